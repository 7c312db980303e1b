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

/** A call in an assistant message of the history: `arguments` is a JSON string on this wire. */
const OpenAiToolCall = z.object({
  id: z.string().nullish(),
  type: z.literal('function', 'only function tool calls are supported').nullish(),
  function: z.object({ name: z.string(), arguments: z.string('arguments must be a JSON string (of an object)') }),
});
export type OpenAiToolCall = z.infer<typeof OpenAiToolCall>;

export const OpenAiMessage = z.object({
  role: z.enum(['system', 'developer', 'user', 'assistant', 'tool', 'function']),
  content: z.union([z.string(), z.array(ContentPart), z.null()]).optional(),
  name: z.string().nullish(),
  /** An assistant turn's calls. */
  tool_calls: z.array(OpenAiToolCall).nullish(),
  /** The legacy form of one call (`functions` era), read as a call without an id. */
  function_call: z.object({ name: z.string(), arguments: z.string('arguments must be a JSON string (of an object)') }).nullish(),
  /** A `tool` turn: the call it answers. */
  tool_call_id: z.string().nullish(),
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

/** A tool offered to the model. Fields beyond OpenAI's function tool are dropped; the job request checks the rest. */
const OpenAiTool = z.object({
  type: z.literal('function', 'only function tools are supported (type "function")'),
  function: z.object({
    name: z.string(),
    description: z.string().nullish(),
    parameters: z.record(z.string(), z.unknown(), 'parameters must be a JSON schema object').nullish(),
    strict: z.boolean().nullish(),
  }),
});
export type OpenAiTool = z.infer<typeof OpenAiTool>;

const OpenAiToolChoice = z.union([z.enum(['none', 'auto', 'required']), z.object({ type: z.literal('function'), function: z.object({ name: z.string() }) })], {
  error: 'tool_choice must be "none", "auto", "required" or {"type":"function","function":{"name":...}}',
});

export const ChatCompletionRequest = z.object({
  ...SamplingFields,
  messages: z.array(OpenAiMessage).min(1, 'messages must not be empty'),
  tools: z.array(OpenAiTool).nullish(),
  tool_choice: OpenAiToolChoice.nullish(),
  parallel_tool_calls: z.boolean().nullish(),
  /** The deprecated forms of tools and tool_choice: refused with a pointer to them (see chatToJobRequest). */
  functions: z.unknown().optional(),
  function_call: z.unknown().optional(),
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

/**
 * `POST /v1/embeddings`. `input` is read as sent and checked by embeddingToJobRequest, which
 * tells token arrays (OpenAI's other form, which Ollama cannot embed) from other mistakes.
 */
export const EmbeddingRequest = z.object({
  model: SamplingFields.model,
  input: z.unknown(),
  encoding_format: z.enum(['float', 'base64'], { error: 'encoding_format must be "float" or "base64"' }).nullish(),
  dimensions: z.number('dimensions must be a positive integer').nullish(),
  user: z.string().nullish(),
  priority: SamplingFields.priority,
  deadline_ms: SamplingFields.deadline_ms,
});
export type EmbeddingRequest = z.infer<typeof EmbeddingRequest>;
