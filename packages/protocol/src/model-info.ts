import { z } from 'zod';

/** A model's `/api/show` answer as an agent saw it, shared through Redis. */
export const ModelInfoRecord = z.object({
  model: z.string(),
  digest: z.string(),
  /** The backend's `/api/show` body, unchanged. */
  show: z.record(z.string(), z.unknown()),
  agent: z.string(),
  updated_at: z.number().int(),
});
export type ModelInfoRecord = z.infer<typeof ModelInfoRecord>;
