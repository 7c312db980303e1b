/** What the inference and embedding routes share: model lookup, keep_alive, context size, hanging up. */
import type { FastifyReply } from 'fastify';
import type { Logger } from 'pino';
import { DurationError, parseKeepAlive, type OllamaOptions } from '@switchyard/protocol';
import type { ModelSpec } from '../model-spec.js';
import { findModel, type SimContext } from '../sim-context.js';
import type { AcquireRequest, Lease } from '../scheduler.js';
import { SimError, isAbortError } from '../sim-error.js';

export function readKeepAlive(value: string | number | null | undefined, fallback: string | number): number {
  try {
    return parseKeepAlive(value ?? fallback);
  } catch (error) {
    if (error instanceof DurationError) throw new SimError('bad_request', error.message);
    throw error;
  }
}

export function resolveModel(ctx: SimContext, name: string): ModelSpec {
  const model = findModel(ctx.catalog, name);
  if (!model) throw new SimError('model_not_found', `model '${name}' not found`);
  return model;
}

/** The runner's context size: `options.num_ctx`, else the config's, clamped to the model's context length. */
export function numCtxFor(ctx: SimContext, model: ModelSpec, options: OllamaOptions | null | undefined): number {
  const asked = options?.num_ctx;
  const wanted = asked !== undefined && asked !== null && asked > 0 ? asked : ctx.config.num_ctx;
  return Math.min(wanted, model.context_length);
}

/** Gives up on a request whose client has gone: nothing can be sent any more. */
export function abandon(reply: FastifyReply): void {
  if (!reply.sent) reply.hijack();
  if (!reply.raw.destroyed) reply.raw.destroy();
}

/**
 * An AbortSignal for one request: aborted when its client hangs up (the response closes before
 * it finished) or the server shuts down. `client` tells the two apart; `detach` stops watching.
 */
export function watchClient(ctx: SimContext, reply: FastifyReply): { client: AbortSignal; signal: AbortSignal; detach: () => void } {
  const client = new AbortController();
  const onClose = () => {
    if (!reply.raw.writableFinished) client.abort();
  };
  reply.raw.on('close', onClose);
  return { client: client.signal, signal: AbortSignal.any([client.signal, ctx.shutdown]), detach: () => reply.raw.off('close', onClose) };
}

/** `"name"` as Go's %q writes it (for the plain names models have). */
export function quoted(name: string): string {
  return JSON.stringify(name);
}

/** A model's full registry name, as Ollama's capability errors print it: `registry.ollama.ai/library/qwen2.5:0.5b`. */
export function registryName(model: ModelSpec): string {
  const name = model.name;
  const slash = name.indexOf('/');
  if (slash === -1) return `registry.ollama.ai/library/${name}`;
  const host = name.slice(0, slash);
  return host.includes('.') || host.includes(':') ? name : `registry.ollama.ai/${name}`;
}

/**
 * Waits for the scheduler's lease (a slot, the model loaded). Undefined when the client hung
 * up while waiting: its reply is abandoned and it is counted as cancelled. A shutdown is the
 * server's 503.
 */
export async function acquireLease(
  ctx: SimContext,
  reply: FastifyReply,
  watched: { client: AbortSignal; detach: () => void },
  log: Logger,
  request: AcquireRequest,
): Promise<Lease | undefined> {
  try {
    return await ctx.scheduler.acquire(request);
  } catch (error) {
    watched.detach();
    if (watched.client.aborted) {
      ctx.counters.cancelledTotal++;
      log.debug('client left while queued');
      abandon(reply);
      return undefined;
    }
    if (isAbortError(error)) throw new SimError('shutting_down', 'server is shutting down');
    throw error;
  }
}
