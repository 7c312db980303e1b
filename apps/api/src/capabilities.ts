import type { RedisConnection } from '@switchyard/redis';
import { ApiErrorCode, jobKind, type JobRequest, type ModelInfoRecord, type RedisKeys } from '@switchyard/protocol';
import { readModelInfos } from './model-infos.js';
import { ApiError } from './errors.js';

/**
 * Ollama's model capabilities (`/api/show` `capabilities`), as far as a job needs them:
 * `completion` for chat and generate, `embedding` for embed jobs, `tools` for a job that
 * offers tools, `vision` for one that carries images.
 */
export type Capability = 'completion' | 'embedding' | 'tools' | 'vision';

/** What a job asks of its model, each with the request field that asks it (for OpenAI's `param`). */
export function requiredCapabilities(request: JobRequest): Array<{ capability: Capability; field: string; what: string }> {
  if (jobKind(request) === 'embed') return [{ capability: 'embedding', field: 'input', what: 'embeddings' }];
  const needs: Array<{ capability: Capability; field: string; what: string }> = [
    { capability: 'completion', field: request.messages ? 'messages' : 'prompt', what: request.messages ? 'chat' : 'generate' },
  ];
  // tool_choice "none" answers in text: the agent sends no tools then.
  if (request.tools !== undefined && request.tools.length > 0 && request.tool_choice !== 'none') needs.push({ capability: 'tools', field: 'tools', what: 'tools' });
  if (request.messages?.some((message) => (message.images?.length ?? 0) > 0)) needs.push({ capability: 'vision', field: 'messages', what: 'images (vision)' });
  return needs;
}

/** The capabilities a model info record lists, or undefined when it lists none (an older Ollama: nothing is refused early). */
export function listedCapabilities(info: ModelInfoRecord | undefined): string[] | undefined {
  const value = info?.show['capabilities'];
  if (!Array.isArray(value)) return undefined;
  return value.filter((entry): entry is string => typeof entry === 'string');
}

/** A job the model cannot do: 400 `model_unsupported`, with the request field at fault. */
export class ModelUnsupportedError extends ApiError {
  constructor(
    message: string,
    readonly capability: Capability,
    /** The request field that asks for the capability (`tools`, `input`, `messages`). */
    readonly field: string,
  ) {
    super(ApiErrorCode.modelUnsupported, message);
  }
}

/**
 * The capabilities each model's shared info lists, read from Redis at most once per
 * `maxAgeMs` per model: the check runs on every submission, and the record (a whole
 * `/api/show` answer) changes only when a model's build does. A model without a record yet is
 * not remembered, so the first agent to share one is heard at the next submission.
 */
export class ModelCapabilities {
  private readonly cached = new Map<string, { readAt: number; listed: string[] }>();

  constructor(
    private readonly ctx: { redis: RedisConnection; keys: RedisKeys },
    private readonly maxAgeMs = 5_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** The model's listed capabilities; undefined when it lists none or Redis did not answer this read. */
  async of(model: string): Promise<string[] | undefined> {
    const hit = this.cached.get(model);
    if (hit && this.now() - hit.readAt < this.maxAgeMs) return hit.listed;
    const infos = await readModelInfos(this.ctx, [model]).catch(() => new Map<string, ModelInfoRecord>());
    const listed = listedCapabilities(infos.get(model));
    if (listed === undefined) this.cached.delete(model);
    else this.cached.set(model, { readAt: this.now(), listed });
    return listed;
  }
}

/**
 * Refuses a job its model cannot do, judged by the capabilities the fleet's shared model
 * info lists (what `/api/show` said on an agent that has the model). Without a list nothing
 * is refused here: the backend refuses instead and the job fails `model_unsupported`.
 */
export function checkCapabilities(model: string, listed: readonly string[] | undefined, request: JobRequest): void {
  if (listed === undefined) return;
  for (const need of requiredCapabilities(request)) {
    if (listed.includes(need.capability)) continue;
    const has = listed.length > 0 ? listed.join(', ') : 'none listed';
    throw new ModelUnsupportedError(
      `model "${model}" does not support ${need.what}: it lacks the "${need.capability}" capability (its capabilities: ${has})`,
      need.capability,
      need.field,
    );
  }
}
