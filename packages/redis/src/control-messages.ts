import { z } from 'zod';

/** Published on the cancel channel; every agent hears it and the one running the job aborts it. */
export const CancelMessage = z.object({
  job_id: z.string().min(1),
  model: z.string(),
  reason: z.string(),
});
export type CancelMessage = z.infer<typeof CancelMessage>;

export function cancelMessage(message: CancelMessage): string {
  return JSON.stringify(message);
}
