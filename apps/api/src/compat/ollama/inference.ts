import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import {
  ApiErrorCode,
  canonicalModelName,
  ErrorCode,
  isOllamaLoadOnlyChat,
  JobErrorCode,
  KEEP_ALIVE_AS_SENT,
  OllamaCompatChatRequest,
  OllamaCompatGenerateRequest,
  ollamaLifecycleLine,
  parseKeepAlive,
  type JobRequest,
  type OllamaEndpoint,
} from '@switchyard/protocol';
import type { ApiContext } from '../../context.js';
import { restartedAfterOutput, type CollectedAnswer } from '../collect-answer.js';
import { CompatError, fromZodError, jobFailureError } from '../compat-error.js';
import { collectSessionAnswer, compatRequestTenant, startJobSession, type JobSession } from '../job-session.js';
import { chatToJobRequest, generateToJobRequest, isLoadOnlyGenerate } from './to-job-request.js';
import { finalLine, ndjson, partLine, toolCallLine } from './wire.js';
import { access } from '../../access.js';

/** `POST /api/chat` and `POST /api/generate` (registered under the `/api` prefix): NDJSON streaming by default, one object with `stream: false`. */
export function registerOllamaInference(scope: FastifyInstance, ctx: ApiContext): void {
  scope.post('/chat', access('tenant'), (request, reply) => answer(ctx, request, reply, 'chat'));
  scope.post('/generate', access('tenant'), (request, reply) => answer(ctx, request, reply, 'generate'));
}

export function modelNotFound(model: string): CompatError {
  return new CompatError(404, ApiErrorCode.modelNotFound, `model '${model}' not found`);
}

/** A request that only loads a model: residency is the fleet's, so it only confirms the model exists. */
export async function requireServable(ctx: ApiContext, model: string): Promise<void> {
  if (!(await ctx.fleet.servableModels()).has(canonicalModelName(model))) throw modelNotFound(model);
}

const isModelNotFound = (error: unknown) => (error as { code?: string }).code === ErrorCode.modelNotFound;

/** The job of an Ollama-wire request, submitted, its id in the reply's header; an unknown model is Ollama's 404. */
export async function startOllamaSession(ctx: ApiContext, request: FastifyRequest, reply: FastifyReply, job: JobRequest, tenant: string, model: string): Promise<JobSession> {
  let session: JobSession;
  try {
    session = await startJobSession(ctx, request, reply, job, tenant);
  } catch (error) {
    throw isModelNotFound(error) ? modelNotFound(model) : error;
  }
  reply.header('x-switchyard-job-id', session.id);
  return session;
}

/** The whole answer of a non-streaming Ollama-wire request (undefined: the client went away); a job failing model_not_found is Ollama's 404. */
export async function collectOllamaAnswer(session: JobSession, reply: FastifyReply, model: string): Promise<CollectedAnswer | undefined> {
  try {
    return await collectSessionAnswer(session, reply);
  } catch (error) {
    throw error instanceof CompatError && isModelNotFound(error) ? modelNotFound(model) : error;
  }
}

async function answer(ctx: ApiContext, request: FastifyRequest, reply: FastifyReply, endpoint: OllamaEndpoint): Promise<unknown> {
  const tenant = await compatRequestTenant(ctx, request);
  let job;
  let model: string;
  let stream: boolean;
  let lifecycle: 'load' | 'unload' | undefined;
  if (endpoint === 'chat') {
    const parsed = OllamaCompatChatRequest.safeParse(request.body);
    if (!parsed.success) throw fromZodError(parsed.error);
    model = parsed.data.model;
    stream = parsed.data.stream !== false;
    if (isOllamaLoadOnlyChat(parsed.data)) lifecycle = isUnload(parsed.data.keep_alive) ? 'unload' : 'load';
    else job = chatToJobRequest(parsed.data);
  } else {
    const parsed = OllamaCompatGenerateRequest.safeParse(request.body);
    if (!parsed.success) throw fromZodError(parsed.error);
    model = parsed.data.model;
    stream = parsed.data.stream !== false;
    if (isLoadOnlyGenerate(parsed.data)) lifecycle = isUnload(parsed.data.keep_alive) ? 'unload' : 'load';
    else job = generateToJobRequest(parsed.data);
  }

  if (lifecycle !== undefined || job === undefined) {
    // Load/unload requests: residency is the fleet's decision (agents load on demand and
    // evict by policy), so these only confirm the model exists and never unload a model
    // other clients are using.
    await requireServable(ctx, model);
    return ollamaLifecycleLine(endpoint, model, lifecycle ?? 'load');
  }

  const session = await startOllamaSession(ctx, request, reply, job, tenant, model);
  if (stream) {
    await streamAnswer(reply, session, endpoint, model);
    return reply;
  }

  const collected = await collectOllamaAnswer(session, reply, model);
  if (!collected) return reply;
  return finalLine(endpoint, model, collected.text, collected.done, collected.toolCalls);
}

/**
 * keep_alive 0, in any spelling ("0", "0s", "0h0m", -0), asks for an unload. The value has
 * passed OllamaCompatKeepAlive, so it parses with the same reading.
 */
function isUnload(keepAlive: string | number | null | undefined): boolean {
  return keepAlive != null && parseKeepAlive(keepAlive, KEEP_ALIVE_AS_SENT) === 0;
}

/**
 * Relays the job as NDJSON lines. As on the OpenAI wire, a `restarted` event is invisible
 * before any text went out; after that the stream ends with an error line (Ollama's way of
 * failing mid-stream) and the restarted job is cancelled.
 */
async function streamAnswer(reply: FastifyReply, session: JobSession, endpoint: OllamaEndpoint, model: string): Promise<void> {
  reply.hijack();
  const raw = reply.raw;
  raw.writeHead(200, { 'Content-Type': 'application/x-ndjson', 'Cache-Control': 'no-cache', 'X-Accel-Buffering': 'no', 'x-switchyard-job-id': session.id });
  // Sent now, not with the first line: a queued job may wait long before it has any, and the
  // client learns the job id (and that the request was accepted) at once.
  raw.flushHeaders();
  let sentText = false; // or a call: any output a restart cannot take back
  let calls = 0;
  const fail = (error: CompatError) => raw.write(ndjson({ error: error.message }));
  try {
    for await (const event of session) {
      if (event.type === 'token') {
        if (event.text === '') continue;
        raw.write(ndjson(partLine(endpoint, model, event.text)));
        sentText = true;
      } else if (event.type === 'tool_call') {
        if (endpoint !== 'chat') continue;
        raw.write(ndjson(toolCallLine(model, event, calls++)));
        sentText = true;
      } else if (event.type === 'restarted') {
        if (!sentText) continue;
        fail(restartedAfterOutput());
        session.abandon('restarted after partial output was streamed');
        break;
      } else if (event.type === 'done') {
        session.finish();
        raw.write(ndjson(finalLine(endpoint, model, '', event)));
        break;
      } else if (event.type === 'error') {
        session.finish();
        fail(event.code === JobErrorCode.modelNotFound ? modelNotFound(model) : jobFailureError(event.code, event.message));
        break;
      }
    }
  } catch (error) {
    session.abandon('stream failed');
    if (!raw.destroyed) fail(error instanceof CompatError ? error : new CompatError(500, ApiErrorCode.internalError, 'internal error'));
  } finally {
    if (!raw.writableEnded) raw.end();
  }
}
