import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ApiErrorCode, canonicalModelName } from '@switchyard/protocol';
import type { ApiContext } from '../../context.js';
import { restartedAfterOutput } from '../collect-answer.js';
import { CompatError, fromZodError, jobFailureError } from '../compat-error.js';
import { collectSessionAnswer, compatRequestTenant, startJobSession, type JobSession } from '../job-session.js';
import { modelCreatedAt } from '../model-info.js';
import { ChatCompletionRequest, CompletionRequest, EmbeddingRequest } from './request-schemas.js';
import { chatToJobRequest, completionToJobRequest, embeddingToJobRequest } from './to-job-request.js';
import { ChunkWriter, completionBody, embeddingsBody, errorChunk, type AnswerMeta, type Endpoint } from './wire.js';
import { access } from '../../access.js';
import { sendWireError } from '../../wire-errors.js';
import { quoteInput } from '../../errors.js';

/**
 * OpenAI-compatible endpoints: `POST /v1/chat/completions`, `POST /v1/completions`,
 * `POST /v1/embeddings`, `GET /v1/models/{id}` (the list itself is `GET /v1/models` in routes/fleet.ts). An
 * encapsulated plugin, so every error on these routes leaves in OpenAI's error shape.
 */
export function registerOpenAiRoutes(app: FastifyInstance, ctx: ApiContext): void {
  void app.register(async (scope) => {
    scope.setErrorHandler((error, _request, reply) => sendWireError(reply, 'openai', error));

    scope.post('/v1/chat/completions', access('tenant'), (request, reply) => answer(ctx, request, reply, 'chat'));
    scope.post('/v1/completions', access('tenant'), (request, reply) => answer(ctx, request, reply, 'completion'));
    scope.post('/v1/embeddings', access('tenant'), (request, reply) => embed(ctx, request, reply));

    // A wildcard, not `:id`: model ids may contain `/` (`hf.co/org/repo:Q4_K_M`).
    scope.get<{ Params: { '*': string } }>('/v1/models/*', access('tenant'), async (request) => {
      await ctx.tenantOf(request);
      const id = request.params['*'];
      const name = canonicalModelName(id);
      const fleet = (await ctx.fleet.servableModels()).get(name);
      if (!fleet) {
        throw new CompatError(404, ApiErrorCode.modelNotFound, `The model ${quoteInput(id)} does not exist or no live agent serves it`, { param: 'model', retryable: false });
      }
      const created = (await modelCreatedAt(ctx, [name])).get(name) ?? 0;
      return {
        id: name,
        object: 'model',
        created: Math.floor(created / 1000),
        owned_by: 'switchyard',
        size_bytes: fleet.size_bytes,
        digests: fleet.digests,
        agents: fleet.agents,
        loaded_on: fleet.loadedOn,
        loading_on: fleet.loadingOn,
      };
    });
  });
}

async function answer(ctx: ApiContext, request: FastifyRequest, reply: FastifyReply, endpoint: Endpoint): Promise<unknown> {
  const tenant = await compatRequestTenant(ctx, request);
  let job;
  let stream: boolean;
  let includeUsage: boolean;
  if (endpoint === 'chat') {
    const parsed = ChatCompletionRequest.safeParse(request.body);
    if (!parsed.success) throw fromZodError(parsed.error);
    job = chatToJobRequest(parsed.data);
    stream = parsed.data.stream === true;
    includeUsage = parsed.data.stream_options?.include_usage === true;
  } else {
    const parsed = CompletionRequest.safeParse(request.body);
    if (!parsed.success) throw fromZodError(parsed.error);
    job = completionToJobRequest(parsed.data);
    stream = parsed.data.stream === true;
    includeUsage = parsed.data.stream_options?.include_usage === true;
  }

  const session = await startJobSession(ctx, request, reply, job, tenant);
  const meta: AnswerMeta = { endpoint, jobId: session.id, model: session.model, created: Math.floor(Date.now() / 1000) };
  reply.header('x-switchyard-job-id', session.id);
  if (stream) {
    await streamAnswer(ctx, reply, session, new ChunkWriter(meta, includeUsage));
    return reply;
  }

  const collected = await collectSessionAnswer(session, reply);
  if (!collected) return reply; // the client is gone and its job cancelled: nobody to answer
  return completionBody(meta, collected.text, collected.done.finish_reason, collected.done.usage, collected.toolCalls);
}

/** `POST /v1/embeddings`: an embed job, answered when it is done (OpenAI does not stream embeddings). */
async function embed(ctx: ApiContext, request: FastifyRequest, reply: FastifyReply): Promise<unknown> {
  const tenant = await compatRequestTenant(ctx, request);
  const parsed = EmbeddingRequest.safeParse(request.body);
  if (!parsed.success) throw fromZodError(parsed.error);
  const job = embeddingToJobRequest(parsed.data);
  const session = await startJobSession(ctx, request, reply, job, tenant);
  reply.header('x-switchyard-job-id', session.id);
  const collected = await collectSessionAnswer(session, reply);
  if (!collected) return reply;
  return embeddingsBody(session.model, collected.embeddings ?? [], collected.done.usage.prompt_tokens, parsed.data.encoding_format ?? 'float');
}

/**
 * Relays the job as OpenAI SSE chunks. A `restarted` event before any text is invisible (the
 * answer simply starts later); after text was sent it cannot be taken back, so the stream
 * ends with an error chunk and the restarted job is cancelled.
 */
async function streamAnswer(ctx: ApiContext, reply: FastifyReply, session: JobSession, writer: ChunkWriter): Promise<void> {
  reply.hijack();
  const raw = reply.raw;
  raw.writeHead(200, {
    'Content-Type': 'text/event-stream; charset=utf-8',
    'Cache-Control': 'no-cache, no-transform',
    Connection: 'keep-alive',
    'X-Accel-Buffering': 'no',
    'x-switchyard-job-id': session.id,
  });
  const opening = writer.opening();
  if (opening) raw.write(opening);
  const heartbeat = setInterval(() => raw.write(': keep-alive\n\n'), ctx.config.sseHeartbeatMs);
  heartbeat.unref();
  let sentText = false; // or a call: any output a restart cannot take back
  try {
    for await (const event of session) {
      if (event.type === 'token') {
        if (event.text === '') continue;
        raw.write(writer.text(event.text));
        sentText = true;
      } else if (event.type === 'tool_call') {
        if (writer.endpoint !== 'chat') continue;
        raw.write(writer.toolCall(event));
        sentText = true;
      } else if (event.type === 'restarted') {
        if (!sentText) continue;
        raw.write(errorChunk(restartedAfterOutput()));
        session.abandon('restarted after partial output was streamed');
        break;
      } else if (event.type === 'done') {
        session.finish();
        raw.write(writer.finish(event.finish_reason, event.usage));
        break;
      } else if (event.type === 'error') {
        session.finish();
        raw.write(errorChunk(jobFailureError(event.code, event.message)));
        break;
      }
    }
  } catch (error) {
    session.abandon('stream failed');
    if (!raw.destroyed) raw.write(errorChunk(error instanceof CompatError ? error : new CompatError(500, ApiErrorCode.internalError, 'internal error')));
  } finally {
    clearInterval(heartbeat);
    if (!raw.writableEnded) raw.end();
  }
}
