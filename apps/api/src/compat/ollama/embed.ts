import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ApiErrorCode, canonicalModelName, ErrorCode, OllamaCompatEmbeddingsRequest, OllamaCompatEmbedRequest } from '@switchyard/protocol';
import type { ApiContext } from '../../context.js';
import { access } from '../../access.js';
import { CompatError, fromZodError } from '../compat-error.js';
import { collectSessionAnswer, compatRequestTenant, startJobSession, type JobSession } from '../job-session.js';
import { modelNotFound } from './inference.js';
import { embeddingsToJobRequest, embedToJobRequest, isLoadOnlyEmbed } from './to-job-request.js';

const NS_PER_MS = 1_000_000;
const ns = (ms: number) => Math.max(0, Math.round(ms * NS_PER_MS));

/** `POST /api/embed` and the legacy `POST /api/embeddings` (under the `/api` prefix): embed jobs, answered whole. */
export function registerOllamaEmbed(scope: FastifyInstance, ctx: ApiContext): void {
  scope.post('/embed', access('tenant'), async (request, reply) => {
    const tenant = await compatRequestTenant(ctx, request);
    const parsed = OllamaCompatEmbedRequest.safeParse(request.body);
    if (!parsed.success) throw fromZodError(parsed.error);
    const { model } = parsed.data;
    // No input only loads the model: residency is the fleet's, so this confirms it exists.
    if (isLoadOnlyEmbed(parsed.data)) {
      await requireServable(ctx, model);
      return { model, embeddings: [] };
    }
    const answer = await embedAnswer(ctx, request, reply, embedToJobRequest(parsed.data), tenant, model);
    if (!answer) return reply;
    const { done, embeddings } = answer;
    return {
      model,
      embeddings,
      total_duration: ns(done.timings.total_ms),
      load_duration: ns(done.timings.load_ms),
      prompt_eval_count: done.usage.prompt_tokens,
    };
  });

  scope.post('/embeddings', access('tenant'), async (request, reply) => {
    const tenant = await compatRequestTenant(ctx, request);
    const parsed = OllamaCompatEmbeddingsRequest.safeParse(request.body);
    if (!parsed.success) throw fromZodError(parsed.error);
    const { model } = parsed.data;
    // As Ollama: an empty prompt embeds nothing (and loads the model).
    if ((parsed.data.prompt ?? '') === '') {
      await requireServable(ctx, model);
      return { embedding: [] };
    }
    const answer = await embedAnswer(ctx, request, reply, embeddingsToJobRequest(parsed.data), tenant, model);
    if (!answer) return reply;
    return { embedding: answer.embeddings[0] ?? [] };
  });
}

async function requireServable(ctx: ApiContext, model: string): Promise<void> {
  if (!(await ctx.fleet.servableModels()).has(canonicalModelName(model))) throw modelNotFound(model);
}

/** Runs the embed job to its end; undefined when the client went away (its job cancelled). */
async function embedAnswer(ctx: ApiContext, request: FastifyRequest, reply: FastifyReply, job: Parameters<typeof startJobSession>[3], tenant: string, model: string) {
  let session: JobSession;
  try {
    session = await startJobSession(ctx, request, reply, job, tenant);
  } catch (error) {
    if ((error as { code?: string }).code === ApiErrorCode.modelNotFound) throw modelNotFound(model);
    throw error;
  }
  reply.header('x-switchyard-job-id', session.id);
  let collected;
  try {
    collected = await collectSessionAnswer(session, reply);
  } catch (error) {
    if (error instanceof CompatError && error.code === ErrorCode.modelNotFound) throw modelNotFound(model);
    throw error;
  }
  if (!collected) return undefined;
  return { done: collected.done, embeddings: collected.embeddings ?? [] };
}
