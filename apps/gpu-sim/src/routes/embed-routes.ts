/**
 * `POST /api/embed` and the legacy `POST /api/embeddings`, as Ollama serves them.
 *
 * 1. Parse and validate (400), find the model (404); a model without the embedding capability
 *    answers 400 `"<model>" does not support embeddings`; read keep_alive (400).
 * 2. Wait for the model like any request (the scheduler loads, evicts, counts its VRAM, may
 *    refuse: 500 too large, 503 queue full). A request without inputs (no `input`, `""` or
 *    `[]`; no or an empty `prompt`) only loads the model, taking no slot, and answers
 *    `{model, embeddings: []}` (`{embedding: []}`): that is how a client loads an embedding
 *    model, which refuses the load-only /api/generate.
 * 3. Otherwise take the model's one slot (an embedding runner serves one call at a time), count
 *    and truncate the inputs (a too-long one with `truncate: false` is Ollama's 400, after the
 *    model loaded, as there), and answer after the call's simulated time (embedding.ts states
 *    the time model) with one vector per input, in input order.
 *
 * A test's hold (holds.ts) catches an embed call whose inputs, joined by newlines, match it;
 * the call then waits before its simulated time starts (`afterTokens` does not apply). A client
 * that hangs up leaves the queue or ends its call at once, giving the slot back.
 */
import { setImmediate as yieldToLoop, setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { OllamaEmbeddingsRequest, OllamaEmbedRequest, type OllamaEmbeddingsResponse, type OllamaEmbedResponse, type OllamaOptions } from '@switchyard/protocol';
import { embedCallMs, embeddingVector, prepareInput } from '../embedding.js';
import { elapsedNs, monotonicNs } from '../generation.js';
import type { ModelSpec } from '../model-spec.js';
import { readJsonBody, validateBody } from '../request-body.js';
import type { SimContext } from '../sim-context.js';
import { isAbortError, SimError } from '../sim-error.js';
import { abandon, acquireLease, numCtxFor, quoted, readKeepAlive, resolveModel, watchClient } from './route-support.js';

interface EmbedCall {
  legacy: boolean;
  modelName: string;
  model: ModelSpec;
  inputs: string[];
  truncate: boolean;
  dimensions: number | undefined;
  keepAliveMs: number;
  options: OllamaOptions | null | undefined;
}

function embeddingModel(ctx: SimContext, name: string): ModelSpec {
  const model = resolveModel(ctx, name);
  if (!model.embedding) throw new SimError('bad_request', `${quoted(name)} does not support embeddings`);
  return model;
}

function parseEmbed(ctx: SimContext, body: unknown): EmbedCall {
  const request = validateBody(OllamaEmbedRequest, body);
  const model = embeddingModel(ctx, request.model);
  const input = request.input ?? [];
  return {
    legacy: false,
    modelName: request.model,
    model,
    // Ollama: an empty string is no input (load only); strings in a list are embedded as they are.
    inputs: typeof input === 'string' ? (input === '' ? [] : [input]) : input,
    truncate: request.truncate ?? true,
    dimensions: request.dimensions ?? undefined,
    keepAliveMs: readKeepAlive(request.keep_alive, ctx.config.keep_alive),
    options: request.options,
  };
}

function parseEmbeddings(ctx: SimContext, body: unknown): EmbedCall {
  const request = validateBody(OllamaEmbeddingsRequest, body);
  const model = embeddingModel(ctx, request.model);
  return {
    legacy: true,
    modelName: request.model,
    model,
    inputs: request.prompt ? [request.prompt] : [],
    truncate: true,
    dimensions: undefined,
    keepAliveMs: readKeepAlive(request.keep_alive, ctx.config.keep_alive),
    options: request.options,
  };
}

async function handle(ctx: SimContext, legacy: boolean, request: FastifyRequest, reply: FastifyReply): Promise<unknown> {
  const arrived = monotonicNs();
  const body = readJsonBody(request.body);
  const call = legacy ? parseEmbeddings(ctx, body) : parseEmbed(ctx, body);
  ctx.counters.embedRequestsTotal++;
  const log = ctx.logger.child({ model: call.model.name, endpoint: legacy ? 'embeddings' : 'embed' });
  const { client, signal, detach } = watchClient(ctx, reply);
  const numCtx = numCtxFor(ctx, call.model, call.options);

  const lease = await acquireLease(ctx, reply, { client, detach }, log, { model: call.model, numCtx, keepAliveMs: call.keepAliveMs, slot: call.inputs.length > 0, signal });
  if (!lease) return;

  try {
    if (call.inputs.length === 0) {
      const empty: OllamaEmbedResponse | OllamaEmbeddingsResponse = legacy ? { embedding: [] } : { model: call.modelName, embeddings: [] };
      return reply.send(empty);
    }
    const loadNs = elapsedNs(arrived);
    const prepared = call.inputs.map((text) => prepareInput(text, numCtx, call.truncate));
    const tokens = prepared.reduce((sum, input) => sum + input.tokens, 0);
    try {
      const pause = ctx.holds.catch(call.inputs.join('\n'));
      if (pause) await pause.wait(signal);
      const started = performance.now();
      const vectors = prepared.map((input) => embeddingVector(call.model, input.text, call.dimensions));
      // The vectors' own computing time is part of the call's simulated time, not added to it.
      // Timers can fire a fraction of a millisecond early: a call never takes less than its time.
      const callMs = embedCallMs(ctx.config, call.model, prepared.length, tokens) * ctx.config.time_scale;
      for (let left = callMs - (performance.now() - started); left > 0; left = callMs - (performance.now() - started)) {
        if (left >= 1) await sleep(left, undefined, { signal });
        else await yieldToLoop(undefined, { signal });
      }
      signal.throwIfAborted();
      const counters = ctx.counters;
      counters.embedCallsTotal++;
      counters.embedInputsTotal += prepared.length;
      counters.embedPromptTokensTotal += tokens;
      counters.embedTruncatedTotal += prepared.filter((input) => input.truncated).length;
      if (legacy) return reply.send({ embedding: vectors[0] ?? [] } satisfies OllamaEmbeddingsResponse);
      const answer: OllamaEmbedResponse = {
        model: call.modelName,
        embeddings: vectors,
        total_duration: elapsedNs(arrived),
        load_duration: loadNs,
        prompt_eval_count: tokens,
      };
      return reply.send(answer);
    } catch (error) {
      if (client.aborted) {
        ctx.counters.cancelledTotal++;
        log.debug('client left, embed call stopped');
        abandon(reply);
        return;
      }
      if (isAbortError(error)) throw new SimError('shutting_down', 'server is shutting down');
      throw error;
    }
  } finally {
    lease.release();
    detach();
  }
}

export function registerEmbedRoutes(app: FastifyInstance, ctx: SimContext): void {
  app.post('/api/embed', (request, reply) => handle(ctx, false, request, reply));
  app.post('/api/embeddings', (request, reply) => handle(ctx, true, request, reply));
}
