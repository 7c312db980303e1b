import { z } from 'zod';

/**
 * OpenAI request bodies, as far as Switchyard reads them. Objects strip unknown keys:
 * clients send many fields (`logit_bias`, `parallel_tool_calls`, `store`, …) that a broker
 * in front of Ollama cannot honour, and refusing them would break those clients. Fields
 * that are read are type-checked, so a wrong type is a 400 naming the parameter.
 * Most accept `null`, which some clients send for "unset".
 */

const TextPart = z.object({ type: z.literal('text'), text: z.string() });
const ImagePart = z.object({
  type: z.literal('image_url'),
  image_url: z.union([z.string(), z.object({ url: z.string(), detail: z.string().nullish() })]),
});
const ContentPart = z.discriminatedUnion('type', [TextPart, ImagePart], {
  error: 'content parts must be {"type":"text","text":...} or {"type":"image_url","image_url":{"url":"data:..."}}',
});

export const OpenAiMessage = z.object({
  role: z.enum(['system', 'developer', 'user', 'assistant', 'tool', 'function']),
  content: z.union([z.string(), z.array(ContentPart), z.null()]).optional(),
  name: z.string().nullish(),
});
export type OpenAiMessage = z.infer<typeof OpenAiMessage>;

const Stop = z.union([z.string(), z.array(z.string()).max(16)]);

/** Sampling fields shared by chat and text completions. */
const SamplingFields = {
  model: z.string({ error: 'model is required' }).min(1, 'model is required'),
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().nullish() }).nullish(),
  max_tokens: z.number().int().positive().nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().min(0).max(1).nullish(),
  seed: z.number().int().nullish(),
  stop: Stop.nullish(),
  presence_penalty: z.number().min(-2).max(2).nullish(),
  frequency_penalty: z.number().min(-2).max(2).nullish(),
  n: z.number().int().min(1).max(1, 'only n=1 is supported').nullish(),
  user: z.string().nullish(),
  metadata: z.record(z.string().max(64), z.string().max(512)).nullish(),
  /** Switchyard extension (openai-node: `extra_body` / extra fields): queue priority. */
  priority: z.string().nullish(),
  /** Switchyard extension: the job expires unless it starts within this many ms. */
  deadline_ms: z.number().int().positive().nullish(),
  /**
   * Switchyard extension: the context window, Ollama's `options.num_ctx` (OpenAI's API has no
   * such field, and Ollama's own OpenAI endpoint cannot set it).
   */
  num_ctx: z.number().int().positive().nullish(),
};

export const ChatCompletionRequest = z.object({
  ...SamplingFields,
  messages: z.array(OpenAiMessage).min(1, 'messages must not be empty'),
  max_completion_tokens: z.number().int().positive().nullish(),
  response_format: z
    .discriminatedUnion('type', [
      z.object({ type: z.literal('text') }),
      z.object({ type: z.literal('json_object') }),
      z.object({
        type: z.literal('json_schema'),
        json_schema: z.object({ name: z.string().optional(), schema: z.record(z.string(), z.unknown()).optional() }),
      }),
    ])
    .nullish(),
});
export type ChatCompletionRequest = z.infer<typeof ChatCompletionRequest>;

export const CompletionRequest = z.object({
  ...SamplingFields,
  prompt: z.union([z.string(), z.array(z.string()).length(1, 'only one prompt per request is supported')], {
    error: 'prompt must be a string (token arrays are not supported)',
  }),
  suffix: z.string().nullish(),
  echo: z.literal(false, 'echo is not supported').nullish(),
  best_of: z.number().int().min(1).max(1, 'only best_of=1 is supported').nullish(),
});
export type CompletionRequest = z.infer<typeof CompletionRequest>;
