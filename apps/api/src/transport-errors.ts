import { STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { ApiErrorCode } from '@switchyard/protocol';
import { ApiError, quoteInput } from './errors.js';
import { errorAnswer, sendWireError, wireOf } from './wire-errors.js';

/**
 * Errors raised before a route handler runs — by Node's HTTP parser, by Node's server, or by
 * Fastify's router — answered in the documented error shape of the wire the request was
 * for, instead of Node's empty bodies or Fastify's own `{error, message, statusCode}`.
 */

/** Headers every answer carries, these ones included. */
export const SECURITY_HEADERS = { 'X-Content-Type-Options': 'nosniff' } as const;

/** Node's parser error codes → what the client did wrong. */
function parserError(error: NodeJS.ErrnoException): ApiError {
  switch (error.code) {
    case 'HPE_HEADER_OVERFLOW':
      return new ApiError(
        ApiErrorCode.headersTooLarge,
        'the request line and headers are larger than the server accepts (16 KB); send a shorter URL and fewer or smaller headers',
      );
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return new ApiError(ApiErrorCode.requestTimeout, 'the request was not received completely in time');
    case 'HPE_INVALID_CHUNK_SIZE':
    case 'HPE_INVALID_TRANSFER_ENCODING':
    case 'HPE_UNEXPECTED_CONTENT_LENGTH':
    case 'HPE_INVALID_CONTENT_LENGTH':
      return new ApiError(ApiErrorCode.invalidRequest, `malformed HTTP request body framing (${error.code}): check Content-Length and Transfer-Encoding: chunked`);
    default:
      return new ApiError(ApiErrorCode.invalidRequest, `malformed HTTP request (${typeof error.code === 'string' ? error.code : 'parse error'})`);
  }
}

/** The request target of a raw request, as far as it can be read (for the wire of its answer). */
function targetOf(rawPacket: unknown): string {
  if (!Buffer.isBuffer(rawPacket)) return '/';
  const firstLine = rawPacket.subarray(0, 8192).toString('latin1').split('\r\n', 1)[0] ?? '';
  return firstLine.split(' ')[1] ?? '/';
}

/** A whole HTTP/1.1 response for a connection Fastify never saw a request on. */
function rawResponse(error: ApiError, target: string): string {
  const answer = errorAnswer(wireOf(target), error);
  const body = JSON.stringify(answer.body);
  const headers = {
    ...answer.headers,
    ...SECURITY_HEADERS,
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': String(Buffer.byteLength(body)),
    Connection: 'close',
  };
  const head = Object.entries(headers)
    .map(([name, value]) => `${name}: ${value}`)
    .join('\r\n');
  return `HTTP/1.1 ${answer.status} ${STATUS_CODES[answer.status] ?? ''}\r\n${head}\r\n\r\n${body}`;
}

/** Fastify's `clientErrorHandler`: a malformed request gets an answer, then the connection closes. */
export function clientErrorHandler(error: NodeJS.ErrnoException & { rawPacket?: unknown }, socket: Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  if (socket.writable) socket.end(rawResponse(parserError(error), targetOf(error.rawPacket)));
  // end() sends the answer and a FIN; give the client a moment to read it before the socket goes.
  setTimeout(() => socket.destroy(), 1_000).unref();
}

/** Fastify's `frameworkErrors`: URLs the router cannot decode, or path parameters beyond the length limit. */
export function frameworkErrorHandler(error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const target = request.raw.url ?? '/';
  reply.headers(SECURITY_HEADERS);
  const apiError =
    error.code === 'FST_ERR_MAX_PARAM_LENGTH'
      ? new ApiError(ApiErrorCode.uriTooLong, `a path segment of ${quoteInput(target, 60)} is longer than the server accepts`)
      : error.code === 'FST_ERR_BAD_URL'
        ? new ApiError(ApiErrorCode.invalidRequest, `the URL ${quoteInput(target, 100)} is not valid: a percent-escape does not decode to UTF-8`)
        : new ApiError(ApiErrorCode.invalidRequest, `the request could not be routed (${error.code})`);
  void sendWireError(reply, wireOf(target), apiError);
}

/**
 * `CONNECT` (a proxy tunnel) never reaches Fastify: Node hands it to `connect` listeners and,
 * with none, destroys the socket without a word. Switchyard is not a proxy: a 405 says so.
 */
export function answerConnectRequests(server: Server): void {
  server.on('connect', (request: IncomingMessage, socket: Socket) => {
    const error = new ApiError(ApiErrorCode.methodNotAllowed, 'CONNECT is not served: Switchyard is not a proxy');
    socket.end(rawResponse(error, request.url?.startsWith('/') ? request.url : '/'));
    setTimeout(() => socket.destroy(), 1_000).unref();
  });
}

/**
 * Node answers an `Expect` other than `100-continue` with an empty 417 unless the server
 * listens for `checkExpectation`; listening, we answer in the documented shape.
 */
export function answerUnmetExpectations(server: Server): void {
  server.on('checkExpectation', (request: IncomingMessage, response: ServerResponse) => {
    const error = new ApiError(ApiErrorCode.expectationFailed, `Expect: ${quoteInput(request.headers.expect ?? '', 60)} is not supported; only 100-continue is`);
    const answer = errorAnswer(wireOf(request.url ?? '/'), error);
    const body = JSON.stringify(answer.body);
    response.writeHead(answer.status, {
      ...answer.headers,
      ...SECURITY_HEADERS,
      'Content-Type': 'application/json; charset=utf-8',
      'Content-Length': Buffer.byteLength(body),
      Connection: 'close',
    });
    response.end(body);
  });
}
