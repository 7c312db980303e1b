import { z } from 'zod';
import { MODEL_NAME_PATTERN } from './model-name.js';

/** A tool's name, as OpenAI allows it (Ollama takes any string; the stricter rule suits both). */
export const ToolName = z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'a tool name is 1 to 64 letters, digits, "_", "." or "-"');

/** Largest JSON schema a job may carry in `format` or a tool's `parameters` (serialized characters). */
export const MAX_FORMAT_SCHEMA_CHARS = 64 * 1024;

/** A JSON schema, bounded in size (its depth is bounded for every body by the API's JSON parser). */
const JsonSchema = z.record(z.string(), z.unknown()).refine((schema) => JSON.stringify(schema).length <= MAX_FORMAT_SCHEMA_CHARS, {
  error: `a JSON schema may be at most ${MAX_FORMAT_SCHEMA_CHARS / 1024} KiB`,
});

/**
 * A call the model made, as the job's history carries it: Ollama's shape (`arguments` is an
 * object), plus the id OpenAI's wire gave it so a `tool` message can answer it by id.
 */
export const ToolCall = z.strictObject({
  id: z.string().min(1).max(200).optional(),
  function: z.strictObject({ name: ToolName, arguments: z.record(z.string(), z.unknown()) }),
});
export type ToolCall = z.infer<typeof ToolCall>;

/** A function the model may call: OpenAI's and Ollama's shape. */
export const ToolDefinition = z.strictObject({
  type: z.literal('function'),
  function: z.strictObject({
    name: ToolName,
    description: z.string().max(16_384).optional(),
    /** The arguments' JSON schema. */
    parameters: JsonSchema.optional(),
    strict: z.boolean().optional(),
  }),
});
export type ToolDefinition = z.infer<typeof ToolDefinition>;

/** `none`: answer in text; `auto`: the model decides; `required`: call some tool; or call this one. */
export const ToolChoice = z.union([z.enum(['none', 'auto', 'required']), z.strictObject({ type: z.literal('function'), function: z.strictObject({ name: ToolName }) })]);
export type ToolChoice = z.infer<typeof ToolChoice>;

/** Largest image a message may carry, decoded (Ollama takes raw base64, no data-URL prefix). */
export const MAX_IMAGE_BYTES = 10 * 1024 * 1024;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const Image = z
  .string()
  .max(Math.ceil(MAX_IMAGE_BYTES / 3) * 4, `an image may be at most ${MAX_IMAGE_BYTES / 1024 / 1024} MiB`)
  .regex(BASE64, 'an image must be base64 (no data: prefix, no line breaks)');

/** A chat message, as Ollama's `/api/chat` takes it (tool calls and results included). */
export const ChatMessage = z.strictObject({
  role: z.enum(['system', 'user', 'assistant', 'tool']),
  content: z.string().max(1_000_000),
  images: z.array(Image).max(16).optional(),
  /** An assistant turn's calls. */
  tool_calls: z.array(ToolCall).max(128).optional(),
  /** A `tool` turn: the tool whose result this is (Ollama's field). */
  tool_name: ToolName.optional(),
  /** A `tool` turn: the id of the call it answers (OpenAI's field). */
  tool_call_id: z.string().min(1).max(200).optional(),
});
export type ChatMessage = z.infer<typeof ChatMessage>;

/** What an embedding job embeds: one text or several (Ollama's `/api/embed` `input`). */
export const MAX_EMBED_INPUTS = 2048;
export const EmbedInput = z.union([
  z.string().max(1_000_000),
  z.array(z.string().max(1_000_000)).min(1, 'input must not be empty').max(MAX_EMBED_INPUTS, `at most ${MAX_EMBED_INPUTS} inputs per request`),
]);
export type EmbedInput = z.infer<typeof EmbedInput>;

/** `generate`: a chat or completion answer (streamed); `embed`: embedding vectors of `input`. */
export const JobKind = z.enum(['generate', 'embed']);
export type JobKind = z.infer<typeof JobKind>;

/**
 * Sampling and runtime options, mirroring Ollama's `options`. Known options are
 * type-checked; others pass through to the backend untouched, since Ollama adds options
 * between releases and a broker should not be the reason a new one cannot be used.
 */
export const GenerationOptions = z
  .object({
    temperature: z.number().min(0).max(100).optional(),
    top_p: z.number().min(0).max(1).optional(),
    top_k: z.number().int().min(0).optional(),
    min_p: z.number().min(0).max(1).optional(),
    seed: z.number().int().optional(),
    num_predict: z.number().int().min(-2).optional(),
    num_ctx: z.number().int().min(1).optional(),
    repeat_penalty: z.number().optional(),
    presence_penalty: z.number().optional(),
    frequency_penalty: z.number().optional(),
    stop: z.array(z.string()).max(16).optional(),
  })
  .catchall(z.union([z.number(), z.string(), z.boolean(), z.array(z.string())]));
export type GenerationOptions = z.infer<typeof GenerationOptions>;

export const JobPriority = z.enum(['interactive', 'batch']);
export type JobPriority = z.infer<typeof JobPriority>;

/**
 * `POST /v1/jobs` body. Unknown fields are refused so a typo (`promt`) is not silently ignored.
 * A job is of one kind: `generate` (the default: `messages` or `prompt`, with tools, format
 * and images) or `embed` (`input`, with `truncate` and `dimensions`).
 */

export const JobRequest = z
  .strictObject({
    /** Absent: `generate` (jobs submitted before kinds existed are generations). */
    kind: JobKind.optional(),
    model: z.string().regex(MODEL_NAME_PATTERN, 'model must be an Ollama model name such as "llama3.1:8b"'),
    messages: z.array(ChatMessage).min(1, 'messages must not be empty').max(1000).optional(),
    prompt: z.string().max(1_000_000).optional(),
    system: z.string().max(1_000_000).optional(),
    options: GenerationOptions.optional(),
    format: z.union([z.literal('json'), JsonSchema]).optional(),
    tools: z.array(ToolDefinition).max(128).optional(),
    tool_choice: ToolChoice.optional(),
    parallel_tool_calls: z.boolean().optional(),
    /** `embed`: the text(s) to embed. */
    input: EmbedInput.optional(),
    /** `embed`: cut inputs longer than the model's context (Ollama's default, true) rather than fail. */
    truncate: z.boolean().optional(),
    /** `embed`: shorten each vector to this many dimensions (models trained for it, e.g. Matryoshka). */
    dimensions: z.number().int().min(1).max(16_384).optional(),
    priority: JobPriority.default('interactive'),
    deadline_ms: z.number().int().positive().max(86_400_000).optional(),
    idempotency_key: z.string().min(1).max(200).optional(),
    metadata: z.record(z.string().max(64), z.string().max(1024)).optional(),
    /**
     * Run on even if every event stream of the job goes away. Without it, a job whose SSE
     * streams all closed and none came back within the disconnect grace period is cancelled
     * (a job that never had a stream is never cancelled that way).
     */
    detach: z.boolean().optional(),
    /**
     * When the job runs again after losing its agent or backend: `continue` (the default)
     * continues from the text already streamed (a `resumed` event; nothing is void), `restart`
     * starts the answer over (a `restarted` event voids the text so far), for a caller that
     * needs one sample, e.g. with a fixed seed.
     */
    on_restart: z.enum(['continue', 'restart']).optional(),
    /** Serve only from an agent whose backend has this digest of the model (`sha256:…` or bare hex). */
    digest: z
      .string()
      .regex(/^(sha256:)?[0-9a-fA-F]{12,64}$/, 'digest must be a sha256 hex digest (12 to 64 hex digits, optional "sha256:")')
      .optional(),
  })
  .superRefine((r, ctx) => {
    const refuse = (field: string, message: string) => ctx.addIssue({ code: 'custom', path: [field], message });
    if (r.kind === 'embed') {
      if (r.input === undefined) refuse('input', 'an embed job needs input (a string or an array of strings)');
      for (const field of ['messages', 'prompt', 'system', 'format', 'tools', 'tool_choice', 'parallel_tool_calls', 'on_restart'] as const) {
        if (r[field] !== undefined) refuse(field, `${field} does not apply to an embed job`);
      }
      return;
    }
    for (const field of ['input', 'truncate', 'dimensions'] as const) {
      if (r[field] !== undefined) refuse(field, `${field} applies only to an embed job (kind: "embed")`);
    }
    if ((r.messages === undefined) === (r.prompt === undefined)) refuse('messages', 'exactly one of messages or prompt is required');
    if (r.tools !== undefined && r.messages === undefined) refuse('tools', 'tools need messages (a chat), not prompt');
    const choice = r.tool_choice;
    if (choice !== undefined && choice !== 'none' && choice !== 'auto' && r.tools === undefined) refuse('tool_choice', 'tool_choice needs tools');
    if (typeof choice === 'object' && r.tools !== undefined && !r.tools.some((tool) => tool.function.name === choice.function.name)) {
      refuse('tool_choice', `tool_choice names "${choice.function.name}", which is not one of tools`);
    }
  });
/** The kind of a job request (absent means `generate`). */
export function jobKind(request: { kind?: JobKind | undefined }): JobKind {
  return request.kind ?? 'generate';
}
export type JobRequest = z.infer<typeof JobRequest>;
export type JobRequestInput = z.input<typeof JobRequest>;

/** What the API stores as BullMQ job data and the agent validates when it dequeues a job. */
export const JobData = z.object({
  id: z.string().min(1),
  /** Canonical model name (see `canonicalModelName`). */
  model: z.string().regex(MODEL_NAME_PATTERN),
  tenant: z.string().min(1),
  request: JobRequest,
  submitted_at: z.number().int(),
  /** Absolute deadline (epoch ms) derived from `deadline_ms` at submission. */
  deadline_at: z.number().int().optional(),
});
export type JobData = z.infer<typeof JobData>;

export const JobStatus = z.enum(['queued', 'loading', 'running', 'completed', 'failed', 'cancelled', 'expired']);
export type JobStatus = z.infer<typeof JobStatus>;

export const TERMINAL_STATUSES: ReadonlySet<JobStatus> = new Set(['completed', 'failed', 'cancelled', 'expired']);

/** `tool_calls`: the answer is the calls in its `tool_calls` (OpenAI's reason). */
export const FinishReason = z.enum(['stop', 'length', 'tool_calls', 'cancelled', 'error']);
export type FinishReason = z.infer<typeof FinishReason>;

export const Usage = z.object({
  prompt_tokens: z.number().int().nonnegative(),
  completion_tokens: z.number().int().nonnegative(),
});
export type Usage = z.infer<typeof Usage>;

export const Timings = z.object({
  queued_ms: z.number().nonnegative(),
  load_ms: z.number().nonnegative(),
  ttft_ms: z.number().nonnegative(),
  total_ms: z.number().nonnegative(),
});
export type Timings = z.infer<typeof Timings>;

export const ErrorInfo = z.object({ code: z.string(), message: z.string() });
export type ErrorInfo = z.infer<typeof ErrorInfo>;

/** A call the model answered with: what `tool_call` events carry (`arguments` is an object). */
export const ToolCallResult = z.object({
  /** Unique within the job: `call_<job id>_<index>` unless the backend named it. */
  id: z.string(),
  name: z.string(),
  arguments: z.record(z.string(), z.unknown()),
});
export type ToolCallResult = z.infer<typeof ToolCallResult>;

/** An embed job's vectors, one per input, in input order. */
export const Embeddings = z.array(z.array(z.number()));

/** What an agent returns as the BullMQ job's return value. */
export const JobResult = z.object({
  text: z.string(),
  finish_reason: FinishReason,
  tool_calls: z.array(ToolCallResult).optional(),
  embeddings: Embeddings.optional(),
  usage: Usage,
  timings: Timings,
  agent: z.string(),
});
export type JobResult = z.infer<typeof JobResult>;

/** `GET /v1/jobs/:id` answer. */
export const JobRecord = z.object({
  id: z.string(),
  model: z.string(),
  status: JobStatus,
  created_at: z.string(),
  result: z.object({ text: z.string(), finish_reason: FinishReason, tool_calls: z.array(ToolCallResult).optional(), embeddings: Embeddings.optional() }).optional(),
  usage: Usage.optional(),
  timings: Timings.optional(),
  agent: z.string().optional(),
  error: ErrorInfo.optional(),
  /** While queued: jobs ahead of this one. */
  queue_position: z.number().int().nonnegative().optional(),
  /** While queued: estimated seconds until it starts, from the model's measured drain rate. */
  queue_eta_s: z.number().nonnegative().optional(),
});
export type JobRecord = z.infer<typeof JobRecord>;

/** `202` answer to `POST /v1/jobs`. */
export const JobAccepted = z.object({
  id: z.string(),
  model: z.string(),
  status: JobStatus,
  /** Where the job stands at submission; `eta_s` is absent until the model has a measured drain rate. */
  queue: z
    .object({
      position: z.number().int().nonnegative(),
      depth: z.number().int().nonnegative(),
      eta_s: z.number().nonnegative().optional(),
    })
    .optional(),
  links: z.object({ self: z.string(), events: z.string() }),
});
export type JobAccepted = z.infer<typeof JobAccepted>;
