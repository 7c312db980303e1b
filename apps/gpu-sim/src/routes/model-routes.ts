/** `/api/tags`, `/api/ps`, `/api/show`: what is on the simulated disk and in its VRAM. */
import type { FastifyInstance } from 'fastify';
import { OllamaShowRequest } from '@switchyard/protocol';
import { readJsonBody, validateBody } from '../request-body.js';
import { findModel, type SimContext } from '../sim-context.js';
import { SimError } from '../sim-error.js';
import { psEntry, showBody, tagsEntry } from '../model-answers.js';

export function registerModelRoutes(app: FastifyInstance, ctx: SimContext): void {
  app.get('/api/tags', async () => ({ models: [...ctx.catalog.values()].map(tagsEntry) }));

  // Only resident models: Ollama lists a runner once its load has finished.
  app.get('/api/ps', async () => ({
    models: ctx.scheduler
      .runnersView()
      .filter((runner) => runner.state === 'ready')
      .map(psEntry),
  }));

  app.post('/api/show', async (request) => {
    const body = validateBody(OllamaShowRequest, readJsonBody(request.body));
    const name = body.model || body.name;
    if (!name) throw new SimError('bad_request', 'model is required');
    const model = findModel(ctx.catalog, name);
    if (!model) throw new SimError('model_not_found', `model '${name}' not found`);
    return showBody(model);
  });
}
