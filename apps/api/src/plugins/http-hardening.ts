import type { Server } from 'node:http';
import type { FastifyHttpOptions, FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import cors from '@fastify/cors';
import { ApiErrorCode } from '@switchyard/protocol';
import type { ApiConfig } from '../config.js';
import { ApiError, quoteInput } from '../errors.js';
import { refuseOtherMediaTypes, useJsonBodyParser } from '../request-body.js';
import { SECURITY_HEADERS, answerConnectRequests, answerUnmetExpectations, clientErrorHandler, frameworkErrorHandler } from '../transport-errors.js';
import { sendWireError, wireOf } from '../wire-errors.js';

/** Headers a browser app may read from a cross-origin answer (backpressure and job links). */
const CORS_EXPOSED_HEADERS = ['Retry-After', 'Retry-After-Ms', 'X-Queue-Depth', 'Location', 'x-switchyard-job-id', 'x-should-retry'];

const list = (value: string | undefined) =>
  (value ?? '')
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean);

/** Server options for the hardening below: they must be given when the Fastify instance is made. */
export function hardenedServerOptions(config: ApiConfig): Partial<FastifyHttpOptions<Server>> {
  return {
    bodyLimit: config.bodyLimitBytes,
    // Node answers a Host-less HTTP/1.1 request with an empty 400; the hook below answers it
    // in the documented shape instead.
    http: { requireHostHeader: false },
    // X-Forwarded-* (the client's address, and https for the session cookie's Secure flag)
    // is believed only from the proxies named here.
    trustProxy: config.trustedProxies ? list(config.trustedProxies) : false,
    clientErrorHandler,
    frameworkErrors: frameworkErrorHandler,
  };
}

/**
 * No 5xx from input and every error in its wire's documented shape: body parsing bounded in
 * size and depth, one value per query parameter, errors raised before a handler (see
 * transport-errors.ts) and unmatched requests answered in the shape of their path's wire;
 * security headers on every answer; CORS only for the configured origins.
 */
export const httpHardening = fp<{ config: ApiConfig }>(async (app: FastifyInstance, { config }) => {
  answerUnmetExpectations(app.server);
  answerConnectRequests(app.server);
  app.setErrorHandler((error, request, reply) => sendWireError(reply, wireOf(request.routeOptions.url ?? request.url), error));
  useJsonBodyParser(app, 'application/json', config.maxJsonDepth);
  refuseOtherMediaTypes(app);

  // @fastify/cors answers preflights on a catch-all OPTIONS route: anyone may ask what is allowed.
  app.addHook('onRoute', (route) => {
    if (route.method === 'OPTIONS' && route.url === '*') route.config = { ...(route.config as object | undefined), access: 'public' } as typeof route.config;
  });
  if (config.corsOrigins) {
    const origins = list(config.corsOrigins);
    // Keys travel in headers, never in cookies, on the cross-origin APIs: no credentials,
    // so even `*` cannot let another site act with a browser's ambient credentials.
    await app.register(cors, {
      origin: origins.includes('*') ? '*' : origins,
      credentials: false,
      methods: ['GET', 'HEAD', 'POST', 'PUT', 'DELETE'],
      allowedHeaders: ['Authorization', 'Content-Type', 'X-API-Key', 'Last-Event-ID', 'X-Timeout-Ms', 'Idempotency-Key'],
      exposedHeaders: CORS_EXPOSED_HEADERS,
      maxAge: 600,
    });
  }

  app.addHook('onRequest', async (request, reply) => {
    // Raw headers persist into hijacked answers (SSE streams) too, unlike reply.header():
    // the security headers, and whatever an earlier hook (CORS) set.
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) reply.raw.setHeader(name, value);
    for (const [name, value] of Object.entries(reply.getHeaders())) if (value !== undefined) reply.raw.setHeader(name, value);
    try {
      if (!request.headers.host) throw new ApiError(ApiErrorCode.invalidRequest, 'the Host header is required');
      rejectRepeatedQueryParameters(request.query);
    } catch (error) {
      return sendWireError(reply, wireOf(request.routeOptions.url ?? request.url), error);
    }
  });

  // HTML pages (Bull Board, the fleet page) may not be framed by another site.
  app.addHook('onSend', async (_request, reply, payload) => {
    const type = reply.getHeader('content-type');
    if (typeof type === 'string' && type.startsWith('text/html')) {
      // A page with a policy of its own (the fleet page) keeps it; it forbids framing too.
      if (!reply.hasHeader('content-security-policy')) void reply.header('Content-Security-Policy', "frame-ancestors 'none'");
      void reply.header('X-Frame-Options', 'DENY');
    }
    return payload;
  });

  // Unmatched requests answer in the shape of the wire the path belongs to: an unknown
  // method on /v1/chat/completions is an OpenAI-shaped 404.
  app.setNotFoundHandler((request, reply) => {
    const error = new ApiError(ApiErrorCode.notFound, `no route ${request.method} ${quoteInput(request.url.split('?')[0], 200)}`);
    void sendWireError(reply, wireOf(request.url), error);
  });
});

/** One value per query parameter: a repeat (`?last_event_id=1&last_event_id=2`) is a 400 naming it. */
function rejectRepeatedQueryParameters(query: unknown): void {
  if (query === null || typeof query !== 'object') return;
  for (const [name, value] of Object.entries(query)) {
    if (Array.isArray(value)) throw new ApiError(ApiErrorCode.invalidRequest, `query parameter ${quoteInput(name, 60)} is given ${value.length} times; send it once`);
  }
}
