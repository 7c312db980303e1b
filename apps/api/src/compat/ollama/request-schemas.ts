import { z } from 'zod';

/**
 * Ollama request bodies as Switchyard reads them. Like Ollama (Go's JSON decoding), unknown
 * fields are ignored (`raw`, `template`, `context`, `think`, `tools`, …); fields that are
 * read are type-checked.
 */

const GO_DURATION = /^[-+]?((\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h))+$/;

/**
 * `keep_alive`: a duration string (`"10m"`), a number of seconds, a negative value (forever)
 * or 0. Validated like Ollama does, then recorded as a hint: the fleet, not a per-node timer,
 * decides residency.
 */
export const KeepAlive = z.union([
  z.number(),
  z.string().refine((value) => value === '0' || /^[-+]?\d+(\.\d+)?$/.test(value) || GO_DURATION.test(value), {
    message: 'invalid duration (use e.g. "5m", "1h", a number of seconds, or -1)',
  }),
]);

const Format = z.union([z.literal(''), z.literal('json'), z.record(z.string(), z.unknown())], {
  error: 'format must be "json" or a JSON schema object',
});

const common = {
  model: z.string({ error: 'model is required' }).min(1, 'model is required'),
  stream: z.boolean().nullish(),
  format: Format.nullish(),
  options: z.record(z.string(), z.unknown()).nullish(),
  keep_alive: KeepAlive.nullish(),
  /** Switchyard extensions (unknown to Ollama, harmless to it): queue priority and deadline. */
  priority: z.string().nullish(),
  deadline_ms: z.number().int().positive().nullish(),
};

export const OllamaMessage = z.object({
  role: z.string(),
  content: z.string().nullish(),
  images: z.array(z.string()).nullish(),
});

export const OllamaChatRequest = z.object({
  ...common,
  messages: z.array(OllamaMessage).nullish(),
});
export type OllamaChatRequest = z.infer<typeof OllamaChatRequest>;

export const OllamaGenerateRequest = z.object({
  ...common,
  prompt: z.string().nullish(),
  system: z.string().nullish(),
  images: z.array(z.string()).nullish(),
});
export type OllamaGenerateRequest = z.infer<typeof OllamaGenerateRequest>;

export const OllamaShowRequest = z.object({
  model: z.string().nullish(),
  /** Older clients send `name`. */
  name: z.string().nullish(),
});
