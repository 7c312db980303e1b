import { z } from 'zod';

/** The JSON body of every 4xx/5xx answer of the native API. */
export const ApiErrorBody = z.object({
  error: z.object({
    code: z.string(),
    message: z.string(),
    retry_after_s: z.number().optional(),
  }),
});
export type ApiErrorBody = z.infer<typeof ApiErrorBody>;
