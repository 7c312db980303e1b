/**
 * Ollama's HTTP API as JSON, after its docs/api.md and api/types.go: the bodies of
 * /api/chat (with tools), /api/generate (with its load and unload forms), /api/embed, the
 * legacy /api/embeddings, /api/tags, /api/ps, /api/show and /api/version, the NDJSON stream
 * lines and the `{"error"}` body.
 *
 * Three parts of Switchyard speak it and each needs the same shapes: the simulator
 * (apps/gpu-sim) serves them as Ollama does, the broker's Ollama endpoints (apps/api
 * compat/ollama) serve them in front of the queue, and the agent's client (packages/backends)
 * reads them from a real Ollama. The base schemas are Ollama's shapes; requests accept what
 * Ollama accepts, which is what the simulator must accept. Where a part means to differ it
 * has an explicit variant next to its base, saying why:
 * - `OllamaCompat*`: request bodies as the broker reads them (stricter where a field goes
 *   into a Switchyard job, plus Switchyard's own fields);
 * - `OllamaClient*`: answers as the client reads them (lenient: a missing or mistyped field
 *   reads as absent, so an older or newer Ollama does not fail the agent).
 *
 * Like Go's encoding/json, request schemas ignore unknown fields and read null as absent.
 */
import { z } from 'zod';
import { isKeepAlive, KEEP_ALIVE_AS_SENT } from './go-duration.js';

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

/** `model` on /api/chat and /api/generate: required and non-empty, in Ollama's wording. */
export const OllamaModelField = z.string({ error: 'model is required' }).min(1, 'model is required');

/**
 * `keep_alive` as JSON carries it: Go's Duration decoder takes a number or a string. What the
 * value means is parseKeepAlive's (go-duration.ts); Ollama reports a bad one in Go's words
 * ("time: invalid duration ...") once the model is found, so the base schema checks the type
 * only.
 */
export const OllamaKeepAlive = z.union([z.string(), z.number()]);
export type OllamaKeepAlive = z.infer<typeof OllamaKeepAlive>;

/**
 * `options`: runner and sampling options (Modelfile parameters). Open-ended like Ollama's
 * map; the ones a server acts on without a model (seed, output length, context) are typed.
 */
export const OllamaOptions = z.looseObject({
  seed: z.number().int().nullish(),
  num_predict: z.number().int().nullish(),
  num_ctx: z.number().int().nullish(),
});
export type OllamaOptions = z.infer<typeof OllamaOptions>;

/** A call in an assistant message: `arguments` is an object on Ollama's wire (a JSON string on OpenAI's). */
export const OllamaToolCall = z.looseObject({
  function: z.looseObject({
    index: z.number().int().nullish(),
    name: z.string(),
    arguments: z.record(z.string(), z.unknown()),
  }),
});
export type OllamaToolCall = z.infer<typeof OllamaToolCall>;

/** A tool offered to the model: `{type: "function", function: {name, description, parameters}}`. */
export const OllamaTool = z.looseObject({
  type: z.string().nullish(),
  function: z.looseObject({
    name: z.string(),
    description: z.string().nullish(),
    parameters: z.unknown().optional(),
  }),
});
export type OllamaTool = z.infer<typeof OllamaTool>;

export const OllamaChatMessage = z.looseObject({
  role: z.string(),
  content: z.string().nullish(),
  images: z.array(z.string()).nullish(),
  tool_calls: z.array(OllamaToolCall).nullish(),
  /** A `tool` message: which tool answered. */
  tool_name: z.string().nullish(),
});
export type OllamaChatMessage = z.infer<typeof OllamaChatMessage>;

/**
 * `format`: `"json"` or a JSON schema in Ollama. Not checked by the base schema: a server
 * that ignores it (the simulator) accepts whatever comes; the broker checks it
 * (OllamaCompatFormat) because it goes into the job.
 */
const UncheckedFormat = z.unknown().optional();

/** `POST /api/generate`. */
export const OllamaGenerateRequest = z.looseObject({
  model: OllamaModelField,
  prompt: z.string().nullish(),
  suffix: z.string().nullish(),
  system: z.string().nullish(),
  template: z.string().nullish(),
  raw: z.boolean().nullish(),
  context: z.array(z.number().int()).nullish(),
  images: z.array(z.string()).nullish(),
  stream: z.boolean().nullish(),
  keep_alive: OllamaKeepAlive.nullish(),
  options: OllamaOptions.nullish(),
  format: UncheckedFormat,
});
export type OllamaGenerateRequest = z.infer<typeof OllamaGenerateRequest>;

/**
 * `tool_choice` is not Ollama's: Switchyard's agent sends it beside `tools` (already narrowed to
 * the named tool, or dropped for "none") for a backend that can honour it — the simulator does;
 * Ollama ignores unknown fields.
 */
export const OllamaToolChoice = z.union([z.string(), z.looseObject({ type: z.string().nullish(), function: z.looseObject({ name: z.string() }) })]);

/** `POST /api/chat`. */
export const OllamaChatRequest = z.looseObject({
  model: OllamaModelField,
  messages: z.array(OllamaChatMessage).nullish(),
  tools: z.array(OllamaTool).nullish(),
  tool_choice: OllamaToolChoice.nullish(),
  stream: z.boolean().nullish(),
  keep_alive: OllamaKeepAlive.nullish(),
  options: OllamaOptions.nullish(),
  format: UncheckedFormat,
});
export type OllamaChatRequest = z.infer<typeof OllamaChatRequest>;

/** `POST /api/embed`: one text or several; no input (or an empty one) only loads the model. */
export const OllamaEmbedRequest = z.looseObject({
  model: OllamaModelField,
  input: z.union([z.string(), z.array(z.string())]).nullish(),
  truncate: z.boolean().nullish(),
  dimensions: z.number().int().nullish(),
  keep_alive: OllamaKeepAlive.nullish(),
  options: OllamaOptions.nullish(),
});
export type OllamaEmbedRequest = z.infer<typeof OllamaEmbedRequest>;

/** The legacy `POST /api/embeddings`: one `prompt`, one vector back. */
export const OllamaEmbeddingsRequest = z.looseObject({
  model: OllamaModelField,
  prompt: z.string().nullish(),
  keep_alive: OllamaKeepAlive.nullish(),
  options: OllamaOptions.nullish(),
});
export type OllamaEmbeddingsRequest = z.infer<typeof OllamaEmbeddingsRequest>;

/** `POST /api/show` takes `model`, or the older `name`; which one is required is the handler's call. */
export const OllamaShowRequest = z.looseObject({
  model: z.string().nullish(),
  name: z.string().nullish(),
  verbose: z.boolean().nullish(),
});
export type OllamaShowRequest = z.infer<typeof OllamaShowRequest>;

/**
 * Load and unload are generate requests without a prompt: Ollama loads the model and answers
 * `done_reason: "load"`, or with keep_alive 0 unloads it (`"unload"`). A chat with no
 * messages does the same. These are the bodies the agent's client sends.
 */
export const OllamaLoadRequest = z.object({
  model: OllamaModelField,
  stream: z.literal(false).optional(),
  keep_alive: OllamaKeepAlive.optional(),
});
export type OllamaLoadRequest = z.infer<typeof OllamaLoadRequest>;

export const OllamaUnloadRequest = OllamaLoadRequest.extend({ keep_alive: z.literal(0) });
export type OllamaUnloadRequest = z.infer<typeof OllamaUnloadRequest>;

/** Ollama's rule for a load-only generate: no prompt (images alone do not count). */
export function isOllamaLoadOnlyGenerate(body: { prompt?: string | null | undefined }): boolean {
  return (body.prompt ?? '') === '';
}

/** A load-only chat: no messages, or an empty list. */
export function isOllamaLoadOnlyChat(body: { messages?: readonly unknown[] | null | undefined }): boolean {
  return (body.messages ?? []).length === 0;
}

// Variant: the broker's Ollama endpoints (apps/api compat/ollama). Only the fields the broker
// maps into a job are read and checked, in the order the broker has always reported them;
// other fields Ollama knows (suffix, raw, template, context, think, tools, …) are dropped
// unchecked, since the broker does not act on them. Key order matters: the first failing
// field is the one the 400 names.

/**
 * keep_alive as the broker checks it: in the schema, so a bad value is refused with the rest
 * of the body, before the fleet is asked about the model or anything is queued; with the
 * as-sent reading (KEEP_ALIVE_AS_SENT says why it differs) and the broker's own message.
 */
export const OllamaCompatKeepAlive = z.union([
  z.number(),
  z.string().refine((value) => isKeepAlive(value, KEEP_ALIVE_AS_SENT), {
    message: 'invalid duration (use e.g. "5m", "1h", a number of seconds, or -1)',
  }),
]);

/** `format` as the broker checks it: it becomes the job's format ("" = none). */
export const OllamaCompatFormat = z.union([z.literal(''), z.literal('json'), z.record(z.string(), z.unknown())], {
  error: 'format must be "json" or a JSON schema object',
});

const compatCommon = {
  model: OllamaModelField,
  stream: OllamaChatRequest.shape.stream,
  format: OllamaCompatFormat.nullish(),
  // Any object: the job request checks each option and names the one at fault
  // (`options.temperature`), as the broker's other endpoints do.
  options: z.record(z.string(), z.unknown()).nullish(),
  keep_alive: OllamaCompatKeepAlive.nullish(),
  /** Switchyard extensions (unknown to Ollama, harmless to it): queue priority and deadline. */
  priority: z.string().nullish(),
  deadline_ms: z.number().int().positive().nullish(),
};

/** A chat message as the broker reads it: the base fields, unknown ones dropped. */
export const OllamaCompatChatMessage = z.object(OllamaChatMessage.shape);

export const OllamaCompatChatRequest = z.object({
  ...compatCommon,
  messages: z.array(OllamaCompatChatMessage).nullish(),
  // Read as sent; the job request checks each tool and names the one at fault (`tools[0].function.name`).
  tools: z.array(z.unknown()).nullish(),
});
export type OllamaCompatChatRequest = z.infer<typeof OllamaCompatChatRequest>;

export const OllamaCompatGenerateRequest = z.object({
  ...compatCommon,
  prompt: OllamaGenerateRequest.shape.prompt,
  system: OllamaGenerateRequest.shape.system,
  images: OllamaGenerateRequest.shape.images,
});
export type OllamaCompatGenerateRequest = z.infer<typeof OllamaCompatGenerateRequest>;

const compatQueueFields = {
  model: OllamaModelField,
  options: compatCommon.options,
  keep_alive: compatCommon.keep_alive,
  priority: compatCommon.priority,
  deadline_ms: compatCommon.deadline_ms,
};

/** `/api/embed` as the broker reads it: each field becomes the embed job's. */
export const OllamaCompatEmbedRequest = z.object({
  ...compatQueueFields,
  input: z.union([z.string(), z.array(z.string())], { error: 'input must be a string or an array of strings' }).nullish(),
  truncate: z.boolean().nullish(),
  dimensions: z.number().int().positive().nullish(),
});
export type OllamaCompatEmbedRequest = z.infer<typeof OllamaCompatEmbedRequest>;

/** The legacy `/api/embeddings` as the broker reads it. */
export const OllamaCompatEmbeddingsRequest = z.object({
  ...compatQueueFields,
  prompt: OllamaEmbeddingsRequest.shape.prompt,
});
export type OllamaCompatEmbeddingsRequest = z.infer<typeof OllamaCompatEmbeddingsRequest>;

/** `/api/show` as the broker reads it: `verbose` is not read (the answer is the one an agent shared). */
export const OllamaCompatShowRequest = z.object({
  model: OllamaShowRequest.shape.model,
  name: OllamaShowRequest.shape.name,
});
export type OllamaCompatShowRequest = z.infer<typeof OllamaCompatShowRequest>;

// ---------------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------------

/** Ollama's timestamps: RFC 3339, written here in UTC. */
export function ollamaTimestamp(ms: number = Date.now()): string {
  return new Date(ms).toISOString();
}

/** `details` of a model in /api/tags, /api/ps and /api/show. `families` is a Go slice: null when empty. */
export const OllamaModelDetails = z.looseObject({
  parent_model: z.string(),
  format: z.string(),
  family: z.string(),
  families: z.array(z.string()).nullable(),
  parameter_size: z.string(),
  quantization_level: z.string(),
});
export type OllamaModelDetails = z.infer<typeof OllamaModelDetails>;

/** One entry of `GET /api/tags`: a model on disk. */
export const OllamaTagsModel = z.looseObject({
  name: z.string(),
  model: z.string(),
  modified_at: z.string(),
  size: z.number(),
  digest: z.string(),
  details: OllamaModelDetails,
});
export type OllamaTagsModel = z.infer<typeof OllamaTagsModel>;

export const OllamaTagsResponse = z.looseObject({ models: z.array(OllamaTagsModel) });
export type OllamaTagsResponse = z.infer<typeof OllamaTagsResponse>;

/** One entry of `GET /api/ps`: a model in memory, `size_vram` of its `size` on the GPU. */
export const OllamaPsModel = z.looseObject({
  name: z.string(),
  model: z.string(),
  size: z.number(),
  digest: z.string(),
  details: OllamaModelDetails,
  /** Far in the future (year 2318 or so) for keep_alive < 0. */
  expires_at: z.string(),
  size_vram: z.number(),
  /** Newer Ollama only. */
  context_length: z.number().optional(),
});
export type OllamaPsModel = z.infer<typeof OllamaPsModel>;

export const OllamaPsResponse = z.looseObject({ models: z.array(OllamaPsModel) });
export type OllamaPsResponse = z.infer<typeof OllamaPsResponse>;

/** The answer of `POST /api/show`; `model_info` holds GGUF metadata keyed like `llama.context_length`. */
export const OllamaShowResponse = z.looseObject({
  license: z.string().optional(),
  modelfile: z.string().optional(),
  parameters: z.string().optional(),
  template: z.string().optional(),
  details: OllamaModelDetails,
  model_info: z.record(z.string(), z.unknown()).optional(),
  capabilities: z.array(z.string()).optional(),
  modified_at: z.string().optional(),
});
export type OllamaShowResponse = z.infer<typeof OllamaShowResponse>;

/** `GET /api/version`. The client reads it as is: without a version string it is not Ollama. */
export const OllamaVersionResponse = z.looseObject({ version: z.string() });
export type OllamaVersionResponse = z.infer<typeof OllamaVersionResponse>;

/** An error: the whole body of a failed request, or the last line of a stream that failed midway. */
export const OllamaErrorBody = z.object({ error: z.string() });
export type OllamaErrorBody = z.infer<typeof OllamaErrorBody>;

export type OllamaEndpoint = 'chat' | 'generate';

const nanoseconds = z.number().int().nonnegative();

/** The count and duration (ns) fields of a final line. */
export const OllamaFinalMetrics = z.object({
  done_reason: z.string(),
  total_duration: nanoseconds,
  load_duration: nanoseconds,
  prompt_eval_count: z.number().int().nonnegative(),
  prompt_eval_duration: nanoseconds,
  eval_count: z.number().int().nonnegative(),
  eval_duration: nanoseconds,
});
export type OllamaFinalMetrics = z.infer<typeof OllamaFinalMetrics>;

/**
 * Fields of every line. A final line has `done: true`, a `done_reason` ("stop", "length";
 * "load"/"unload" for lifecycle requests) and, after a generation, the metrics.
 */
const lineFields = {
  model: z.string(),
  created_at: z.string(),
  done: z.boolean(),
  ...OllamaFinalMetrics.partial().shape,
};

/** A line of `/api/generate` (or its whole answer with `stream: false`). */
export const OllamaGenerateLine = z.looseObject({
  ...lineFields,
  response: z.string(),
  /** Token ids to send back as `context` next time; not in raw mode. */
  context: z.array(z.number().int()).optional(),
});
export type OllamaGenerateLine = z.infer<typeof OllamaGenerateLine>;

/** A line of `/api/chat` (or its whole answer with `stream: false`); a line with `tool_calls` carries whole calls. */
export const OllamaChatLine = z.looseObject({
  ...lineFields,
  message: z.looseObject({ role: z.string(), content: z.string(), tool_calls: z.array(OllamaToolCall).optional() }),
});
export type OllamaChatLine = z.infer<typeof OllamaChatLine>;

export type OllamaStreamLine = OllamaGenerateLine | OllamaChatLine;

/** The answer of `/api/embed`: one vector per input, in input order. */
export const OllamaEmbedResponse = z.looseObject({
  model: z.string(),
  embeddings: z.array(z.array(z.number())),
  total_duration: nanoseconds.optional(),
  load_duration: nanoseconds.optional(),
  prompt_eval_count: z.number().int().nonnegative().optional(),
});
export type OllamaEmbedResponse = z.infer<typeof OllamaEmbedResponse>;

/** The answer of the legacy `/api/embeddings`. */
export const OllamaEmbeddingsResponse = z.looseObject({ embedding: z.array(z.number()) });
export type OllamaEmbeddingsResponse = z.infer<typeof OllamaEmbeddingsResponse>;

/** The text part of a line, in the endpoint's shape. */
export function ollamaContent(endpoint: OllamaEndpoint, text: string): { message: { role: 'assistant'; content: string } } | { response: string } {
  return endpoint === 'chat' ? { message: { role: 'assistant', content: text } } : { response: text };
}

/** The answer to a load or unload request. */
export function ollamaLifecycleLine(endpoint: OllamaEndpoint, model: string, reason: 'load' | 'unload') {
  return { model, created_at: ollamaTimestamp(), ...ollamaContent(endpoint, ''), done: true, done_reason: reason };
}

// Variant: the agent's client (packages/backends). Ollama is a trust boundary and a moving
// target: Go's `omitempty` drops zero numbers and empty strings, old versions lack newer
// fields, and proxies retype things. The client checks what it relies on and reads every
// other field leniently: absent or of another type is absent, never a failure.

function lenient<T extends z.ZodType>(schema: T) {
  return schema.optional().catch(undefined);
}

/** A JSON object (not null, not an array), kept as sent rather than copied: the agent forwards it whole. */
const PassedObject = z.custom<Record<string, unknown>>((value) => typeof value === 'object' && value !== null && !Array.isArray(value));

/** A number read leniently (for keys only known at run time, such as `<arch>.context_length`). */
export const OllamaClientNumber = lenient(z.number());
export const OllamaClientString = lenient(z.string());

/** `/api/tags` and `/api/ps` bodies: a nil Go slice encodes as `null`; it, or no field, means no models. */
export const OllamaClientModelList = z.looseObject({ models: z.array(z.unknown()).nullish() });

/**
 * An entry of either list, with `name` resolved. `/api/ps` has always carried `model`,
 * `name` is the older field: either one names it (an empty name falls back to `model`);
 * an entry with neither is malformed.
 */
export const OllamaClientModel = z
  .looseObject({
    name: OllamaClientString,
    model: OllamaClientString,
    digest: OllamaClientString,
    size: OllamaClientNumber,
    details: lenient(PassedObject),
    size_vram: OllamaClientNumber,
    expires_at: OllamaClientString,
    context_length: OllamaClientNumber,
  })
  .transform((entry, ctx) => {
    const name = entry.name || entry.model;
    if (!name) {
      ctx.addIssue({ code: 'custom', message: 'a model entry needs a name or model' });
      return z.NEVER;
    }
    return { ...entry, name };
  });
export type OllamaClientModel = z.infer<typeof OllamaClientModel>;

/** `/api/show`: any object; `model_info` is read when it is one. */
export const OllamaClientShowResponse = z.looseObject({ model_info: lenient(PassedObject) });

/** One NDJSON line of a chat or generate stream: any object, read field by field. */
export const OllamaClientStreamLine = z.looseObject({
  /** Any non-null value is an error (a string in Ollama; other shapes are shown as JSON). */
  error: z.unknown().optional(),
  message: lenient(z.looseObject({ content: OllamaClientString, tool_calls: lenient(z.array(z.unknown())) })),
  response: OllamaClientString,
  done: lenient(z.boolean()),
  done_reason: OllamaClientString,
  prompt_eval_count: OllamaClientNumber,
  eval_count: OllamaClientNumber,
  total_duration: OllamaClientNumber,
  load_duration: OllamaClientNumber,
  prompt_eval_duration: OllamaClientNumber,
  eval_duration: OllamaClientNumber,
});
export type OllamaClientStreamLine = z.infer<typeof OllamaClientStreamLine>;

/** An `/api/embed` answer: the vectors are what the agent relies on; the counts are read leniently. */
export const OllamaClientEmbedResponse = z.looseObject({
  embeddings: z.array(z.array(z.number())),
  prompt_eval_count: OllamaClientNumber,
  total_duration: OllamaClientNumber,
  load_duration: OllamaClientNumber,
});
export type OllamaClientEmbedResponse = z.infer<typeof OllamaClientEmbedResponse>;

/** Ollama's `{"error": "..."}`, or OpenAI's `{error: {message}}` in case a proxy or an OpenAI-compatible shim answers. */
export const OllamaClientErrorBody = z.union([OllamaErrorBody, z.looseObject({ error: z.looseObject({ message: z.string() }) })]);
