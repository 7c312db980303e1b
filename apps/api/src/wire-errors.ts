import type { Socket } from 'node:net';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ApiErrorCode } from '@switchyard/protocol';
import { toCompatError } from './compat/compat-error.js';
import { openAiErrorBody } from './compat/openai/wire.js';
import { ApiError, errorHeaders, toApiError } from './errors.js';

/**
 * The three wires Switchyard speaks, each with its documented error shape:
 * native `{error: {code, message}}`, OpenAI `{error: {message, type, param, code}}`,
 * Ollama `{error: "<message>"}`.
 */
export type Wire = 'native' | 'openai' | 'ollama';

const OPENAI_PATHS = new Set(['/v1/chat/completions', '/v1/completions', '/v1/embeddings']);

/**
 * Which wire a path belongs to. Given a route pattern (`/v1/models/*`) for matched routes,
 * and the raw request target for errors raised before routing (malformed HTTP, bad URL),
 * where it is only a best guess: an undecodable or absolute-form target still gets an
 * answer, in the shape its path most likely expects.
 */
export function wireOf(path: string): Wire {
  let target = path;
  // Absolute-form (`GET http://host/api/chat HTTP/1.1`): the path starts after the authority.
  const scheme = /^[a-z][a-z0-9+.-]*:\/\/[^/]*/i.exec(target);
  if (scheme) target = target.slice(scheme[0].length) || '/';
  target = target.split(/[?#]/, 1)[0]!;
  if (target === '/api' || target.startsWith('/api/')) return 'ollama';
  // A native route under the OpenAI wire's `/v1/models/*` (routes/backlog.ts); `:id` is its pattern.
  if (/^\/v1\/models\/[^/]+\/backlog$/.test(target)) return 'native';
  if (OPENAI_PATHS.has(target) || (target.startsWith('/v1/models/') && target.length > '/v1/models/'.length)) return 'openai';
  return 'native';
}

export interface ErrorAnswer {
  status: number;
  headers: Record<string, string>;
  body: unknown;
}

/** An error as its wire answers it; `request` (when there is one) classifies framework errors and logs internal ones. */
export function errorAnswer(wire: Wire, error: unknown, request?: FastifyRequest): ErrorAnswer {
  if (wire === 'native') {
    const apiError = error instanceof ApiError || !request ? asApiError(error) : toApiError(error, request);
    return { status: apiError.status, headers: errorHeaders(apiError), body: apiError.body() };
  }
  // Without a request (errors raised before Fastify built one) only ApiErrors are thrown,
  // which toCompatError converts without reading the request.
  const compat = toCompatError(request ? error : asApiError(error), request as FastifyRequest);
  const headers = compat.headers();
  if (wire === 'openai') {
    // openai-node retries 409 and every 5xx; say so when a retry cannot help.
    if (compat.options.retryable === false) headers['x-should-retry'] = 'false';
    return { status: compat.status, headers, body: openAiErrorBody(compat) };
  }
  return { status: compat.status, headers, body: { error: compat.message } };
}

function asApiError(error: unknown): ApiError {
  return error instanceof ApiError ? error : new ApiError(ApiErrorCode.internalError, 'internal error');
}

/** Sends an error in its wire's shape through Fastify: the one place every route's errors leave from. */
export function sendWireError(reply: FastifyReply, wire: Wire, error: unknown): FastifyReply {
  const answer = errorAnswer(wire, error, reply.request);
  if (answer.status === 413) lingerOverRejectedBody(reply);
  return reply.status(answer.status).headers(answer.headers).send(answer.body);
}

/** Bytes of a refused body read and discarded before the connection is dropped. */
const LINGER_LIMIT_BYTES = 64 * 1024 * 1024;
/** Longest a connection that must close stays half-open, reading what the client still sends. */
const LINGER_MS = 5_000;

/**
 * A 413 is sent while the client may still be uploading. Closing the connection then (as
 * Fastify does) resets it with unread bytes in flight, and most clients report the reset
 * (EPIPE, ECONNRESET) instead of the answer. So the rest of the body is read and dropped, up
 * to a bound: on a keep-alive connection, which then stays usable; on one that must close
 * (the client sent `Connection: close`), by closing in stages (RFC 9112 §9.6): our side is
 * shut after the answer, and the socket destroyed only once the client has closed its side,
 * or after `LINGER_MS`.
 */
function lingerOverRejectedBody(reply: FastifyReply): void {
  const raw = reply.request.raw;
  const socket = raw.socket as (Socket & { destroySoon?: () => void }) | null;
  if (raw.readableEnded || !socket) return;
  reply.removeHeader('connection');
  let discarded = 0;
  raw.on('data', (chunk: Buffer) => {
    discarded += chunk.length;
    if (discarded > LINGER_LIMIT_BYTES) socket.destroy();
  });
  raw.resume();
  // Node closes a connection that will not be kept alive with destroySoon() once the answer
  // is written, which would reset it with the upload still arriving: end our side instead
  // and keep discarding until the client closes its own.
  socket.destroySoon = () => {
    socket.end();
    socket.on('data', () => undefined);
    socket.resume();
    socket.once('end', () => socket.destroy());
    setTimeout(() => socket.destroy(), LINGER_MS).unref();
  };
}
