import type { FastifyInstance } from 'fastify';
import { ApiErrorCode } from '@switchyard/protocol';
import type { ApiContext } from '../../context.js';
import { quoteInput } from '../../errors.js';
import { useJsonBodyParser } from '../../request-body.js';
import { sendWireError } from '../../wire-errors.js';
import { CompatError } from '../compat-error.js';
import { registerOllamaEmbed } from './embed.js';
import { registerOllamaInference } from './inference.js';
import { registerOllamaModels } from './models.js';
import { registerOllamaPull } from './pull.js';

/**
 * Ollama-compatible endpoints under `/api`. An encapsulated plugin: errors leave as Ollama's
 * `{"error": "..."}`, and bodies are read as JSON whatever their content type, because
 * Ollama's documented `curl -d '{...}'` calls send `application/x-www-form-urlencoded`.
 */
export function registerOllamaRoutes(app: FastifyInstance, ctx: ApiContext): void {
  void app.register(
    async (scope) => {
      scope.setErrorHandler((error, _request, reply) => sendWireError(reply, 'ollama', error));
      useJsonBodyParser(scope, '*', ctx.config.maxJsonDepth);
      scope.setNotFoundHandler((request, reply) => {
        const path = request.url.split('?')[0] ?? '';
        const managed = /^\/api\/(push|create|copy)$/.test(path);
        sendWireError(
          reply,
          'ollama',
          new CompatError(
            404,
            ApiErrorCode.notFound,
            managed
              ? `${quoteInput(path)} is not available through Switchyard: models come from a registry (POST /api/pull, the fleet catalog at /admin/models)`
              : `no route ${request.method} ${quoteInput(path)}; Switchyard serves /api/chat, /api/generate, /api/embed, /api/embeddings, /api/tags, /api/ps, /api/show, /api/version, /api/pull and /api/delete`,
          ),
        );
      });
      registerOllamaInference(scope, ctx);
      registerOllamaEmbed(scope, ctx);
      registerOllamaModels(scope, ctx);
      registerOllamaPull(scope, ctx);
    },
    { prefix: '/api' },
  );
}
