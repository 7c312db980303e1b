import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { OllamaCompatEmbeddingsRequest, OllamaCompatEmbedRequest, type JobRequest } from '@switchyard/protocol';
import type { ApiContext } from '../../context.js';
import { access } from '../../access.js';
import { fromZodError } from '../compat-error.js';
import { compatRequestTenant } from '../job-session.js';
import { collectOllamaAnswer, requireServable, startOllamaSession } from './inference.js';
import { ns } from './wire.js';
import { embeddingsToJobRequest, embedToJobRequest, isLoadOnlyEmbed } from './to-job-request.js';

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

/** Runs the embed job to its end; undefined when the client went away (its job cancelled). */
async function embedAnswer(ctx: ApiContext, request: FastifyRequest, reply: FastifyReply, job: JobRequest, tenant: string, model: string) {
  const session = await startOllamaSession(ctx, request, reply, job, tenant, model);
  const collected = await collectOllamaAnswer(session, reply, model);
  if (!collected) return undefined;
  return { done: collected.done, embeddings: collected.embeddings ?? [] };
}
