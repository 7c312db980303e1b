/**
 * Request bodies of the Ollama endpoints the simulator serves, checked with zod.
 *
 * Bodies arrive as raw text whatever their Content-Type (curl's `-d` sends
 * application/x-www-form-urlencoded, some clients send none) and are parsed here, so errors
 * keep Ollama's `{"error": "..."}` shape. Unknown fields are ignored and null reads as absent,
 * like Go's encoding/json.
 */
import { z } from 'zod';
import { SimError } from './sim-error.js';

const ModelField = z.string({ error: 'model is required' }).min(1, 'model is required');
const KeepAliveField = z.union([z.string(), z.number()]).nullish();

export const RequestOptions = z
  .looseObject({
    seed: z.number().int().nullish(),
    num_predict: z.number().int().nullish(),
    num_ctx: z.number().int().nullish(),
  })
  .nullish();
export type RequestOptions = z.infer<typeof RequestOptions>;

export const GenerateRequest = z.looseObject({
  model: ModelField,
  prompt: z.string().nullish(),
  suffix: z.string().nullish(),
  system: z.string().nullish(),
  template: z.string().nullish(),
  raw: z.boolean().nullish(),
  context: z.array(z.number().int()).nullish(),
  images: z.array(z.string()).nullish(),
  stream: z.boolean().nullish(),
  keep_alive: KeepAliveField,
  options: RequestOptions,
});
export type GenerateRequest = z.infer<typeof GenerateRequest>;

export const ChatMessage = z.looseObject({
  role: z.string(),
  content: z.string().nullish(),
  images: z.array(z.string()).nullish(),
});
export type ChatMessage = z.infer<typeof ChatMessage>;

export const ChatRequest = z.looseObject({
  model: ModelField,
  messages: z.array(ChatMessage).nullish(),
  stream: z.boolean().nullish(),
  keep_alive: KeepAliveField,
  options: RequestOptions,
});
export type ChatRequest = z.infer<typeof ChatRequest>;

/** `/api/show` takes `model`, or the older `name`. */
export const ShowRequest = z.looseObject({
  model: z.string().nullish(),
  name: z.string().nullish(),
  verbose: z.boolean().nullish(),
});
export type ShowRequest = z.infer<typeof ShowRequest>;

/** Parses the raw body text as JSON; an empty body is Ollama's "missing request body". */
export function readJsonBody(body: unknown): unknown {
  if (body === undefined || body === null || body === '') throw new SimError('bad_request', 'missing request body');
  if (typeof body !== 'string') return body;
  try {
    return JSON.parse(body);
  } catch (error) {
    throw new SimError('bad_request', `invalid JSON body: ${(error as Error).message}`);
  }
}

/** Validates a parsed body; the first problem becomes a 400 naming its field. */
export function validateBody<T extends z.ZodType>(schema: T, body: unknown): z.infer<T> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new SimError('bad_request', 'request body must be a JSON object');
  }
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  if (!issue) throw new SimError('bad_request', 'invalid request');
  if (issue.path.length === 1 && issue.path[0] === 'model') throw new SimError('bad_request', 'model is required');
  const path = issue.path.map((part) => (typeof part === 'number' ? `[${part}]` : `.${String(part)}`)).join('').replace(/^\./, '');
  throw new SimError('bad_request', `invalid request: ${path}: ${issue.message}`);
}
