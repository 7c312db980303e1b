import type { FastifyInstance, FastifyReply } from 'fastify';
import type { ApiContext } from '../../context.js';
import { CompatError, toCompatError } from '../compat-error.js';
import { registerOllamaInference } from './inference.js';
import { registerOllamaModels } from './models.js';

function sendError(reply: FastifyReply, error: CompatError): void {
  reply.headers(error.headers());
  void reply.status(error.status).send({ error: error.message });
}

/**
 * Ollama-compatible endpoints under `/api`. An encapsulated plugin: errors leave as Ollama's
 * `{"error": "..."}`, and bodies are read as JSON whatever their content type, because
 * Ollama's documented `curl -d '{...}'` calls send `application/x-www-form-urlencoded`.
 */
export function registerOllamaRoutes(app: FastifyInstance, ctx: ApiContext): void {
  void app.register(async (scope) => {
    scope.setErrorHandler((error, request, reply) => sendError(reply, toCompatError(error, request)));
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'string' }, (_request, body, done) => {
      const text = typeof body === 'string' ? body : body.toString('utf8');
      if (text.trim() === '') {
        done(null, {});
        return;
      }
      try {
        done(null, JSON.parse(text));
      } catch (error) {
        done(error as Error, undefined);
      }
    });
    scope.setNotFoundHandler((request, reply) => {
      const path = request.url.split('?')[0];
      const managed = /^\/api\/(pull|push|create|copy|delete)$/.test(path ?? '');
      sendError(
        reply,
        new CompatError(
          404,
          'not_found',
          managed
            ? `${path} is not available through Switchyard: models are managed on each node`
            : `no route ${request.method} ${path}; Switchyard serves /api/chat, /api/generate, /api/tags, /api/ps, /api/show and /api/version`,
        ),
      );
    });
    registerOllamaInference(scope, ctx);
    registerOllamaModels(scope, ctx);
  }, { prefix: '/api' });
}
