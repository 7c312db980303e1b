import { z } from 'zod';
import { ApiErrorCode } from './error-codes.js';

const errorFields = {
  message: z.string(),
  retry_after_s: z.number().optional(),
};

/** The JSON body of every 4xx/5xx answer of the native API, as this version of the API writes it. */
export const ApiErrorBody = z.object({
  error: z.object({ code: z.enum(ApiErrorCode), ...errorFields }),
});
export type ApiErrorBody = z.infer<typeof ApiErrorBody>;

/**
 * The same body as a client reads it: any string is a code. A newer API may answer with a
 * code this version does not know, and a client should still report that code and its
 * message rather than refuse the body.
 */
export const ReceivedApiErrorBody = z.object({
  error: z.object({ code: z.string(), ...errorFields }),
});
export type ReceivedApiErrorBody = z.infer<typeof ReceivedApiErrorBody>;
