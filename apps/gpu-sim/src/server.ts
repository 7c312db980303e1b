/**
 * The Fastify app: Ollama's routes, the `/sim` namespace, and Ollama's error conventions —
 * `{"error": "..."}` bodies, plain-text "404 page not found" for unknown paths, and JSON
 * bodies accepted whatever their Content-Type (curl -d sends form encoding, some clients none).
 */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { registerEmbedRoutes } from './routes/embed-routes.js';
import { registerInferenceRoutes } from './routes/inference-routes.js';
import { registerMetaRoutes } from './routes/meta-routes.js';
import { registerModelRoutes } from './routes/model-routes.js';
import { registerPullRoutes } from './routes/pull-routes.js';
import { registerSimRoutes } from './routes/sim-routes.js';
import type { SimContext } from './sim-context.js';
import { SimError } from './sim-error.js';

/** Per-request lines at debug level: at fleet scale, info-level lines per token stream are noise. */
class DebugRequestLogs extends LogController {
  override incomingRequest(request: FastifyRequest): void {
    request.log.debug({ req: request }, 'incoming request');
  }

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    reply.log.debug({ res: reply, err: error ?? undefined, responseTime: reply.elapsedTime }, 'request completed');
  }
}

export function buildServer(ctx: SimContext): FastifyInstance {
  const app = Fastify({
    loggerInstance: ctx.logger as FastifyBaseLogger,
    logController: new DebugRequestLogs(),
    bodyLimit: ctx.config.body_limit_bytes,
  });

  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (_request, body, done) => done(null, body));

  app.setErrorHandler((error: FastifyError | SimError, request, reply) => {
    ctx.counters.errorsTotal++;
    const status = error instanceof SimError ? error.status : typeof error.statusCode === 'number' && error.statusCode >= 400 ? error.statusCode : 500;
    if (status >= 500 && !(error instanceof SimError)) request.log.error({ err: error }, 'request failed');
    if (reply.sent || reply.raw.headersSent) return;
    void reply.code(status).type('application/json; charset=utf-8').send({ error: error.message });
  });

  app.setNotFoundHandler((_request, reply) => {
    void reply.code(404).type('text/plain; charset=utf-8').send('404 page not found');
  });

  registerMetaRoutes(app, ctx);
  registerModelRoutes(app, ctx);
  registerInferenceRoutes(app, ctx);
  registerEmbedRoutes(app, ctx);
  registerPullRoutes(app, ctx);
  registerSimRoutes(app, ctx);
  return app;
}
