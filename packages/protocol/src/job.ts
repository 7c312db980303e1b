import { z } from 'zod';
import { MODEL_NAME_PATTERN } from './model-name.js';

/** A chat message, as Ollama's `/api/chat` takes it. */
export const ChatMessage = z.strictObject({
  role: z.enum(['system', 'user', 'assistant', 'tool']),
  content: z.string().max(1_000_000),
  images: z.array(z.string()).max(16).optional(),
});
export type ChatMessage = z.infer<typeof ChatMessage>;

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

/** `POST /v1/jobs` body. Unknown fields are refused so a typo (`promt`) is not silently ignored. */
/** Largest JSON schema a job may carry as its `format` (serialized characters). */
export const MAX_FORMAT_SCHEMA_CHARS = 64 * 1024;

export const JobRequest = z
  .strictObject({
    model: z.string().regex(MODEL_NAME_PATTERN, 'model must be an Ollama model name such as "llama3.1:8b"'),
    messages: z.array(ChatMessage).min(1, 'messages must not be empty').max(1000).optional(),
    prompt: z.string().max(1_000_000).optional(),
    system: z.string().max(1_000_000).optional(),
    options: GenerationOptions.optional(),
    // A schema is copied into the job, its events and the backend request: bounded in size
    // here (its depth is bounded for every body by the API's JSON parser).
    format: z
      .union([
        z.literal('json'),
        z.record(z.string(), z.unknown()).refine((schema) => JSON.stringify(schema).length <= MAX_FORMAT_SCHEMA_CHARS, {
          error: `a JSON schema in format may be at most ${MAX_FORMAT_SCHEMA_CHARS / 1024} KiB`,
        }),
      ])
      .optional(),
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
  .refine((r) => (r.messages === undefined) !== (r.prompt === undefined), {
    message: 'exactly one of messages or prompt is required',
    path: ['messages'],
  });
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

export const FinishReason = z.enum(['stop', 'length', 'cancelled', 'error']);
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

/** What an agent returns as the BullMQ job's return value. */
export const JobResult = z.object({
  text: z.string(),
  finish_reason: FinishReason,
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
  result: z.object({ text: z.string(), finish_reason: FinishReason }).optional(),
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
