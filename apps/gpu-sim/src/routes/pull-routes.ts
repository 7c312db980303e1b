/**
 * `POST /api/pull`, `DELETE /api/delete`, `POST /api/copy` (Ollama's), and the simulator's own
 * `POST|DELETE /sim/faults/pull` and `GET /sim/disk`.
 *
 * Pull progress is Ollama's: `pulling manifest`, then `pulling <12 hex>` lines with digest,
 * total and completed, then `verifying sha256 digest`, `writing manifest`, `success`. An
 * unknown model is a streamed error line after a 200 (as Ollama), or a 404 with
 * `stream: false` (Ollama answers 500; a 404 lets clients tell a missing model). A full disk
 * is an error line (or a 500 `no space left on device`, as Ollama).
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { canonicalModelName } from '@switchyard/protocol';
import { NdjsonResponse } from '../ndjson-response.js';
import { Pulls } from '../pulls.js';
import { readJsonBody, validateBody } from '../request-body.js';
import { diskUsedBytes, findModel, type SimContext } from '../sim-context.js';
import { SimError } from '../sim-error.js';

const PullBody = z.object({
  model: z.string().optional(),
  name: z.string().optional(),
  insecure: z.boolean().optional(),
  stream: z.boolean().optional(),
});
const DeleteBody = z.object({ model: z.string().optional(), name: z.string().optional() });
const CopyBody = z.object({ source: z.string().min(1), destination: z.string().min(1) });
const FaultBody = z.strictObject({
  model: z.string().min(1),
  kind: z.enum(['drop', 'digest_mismatch']),
  after_fraction: z.number().min(0).max(1).optional(),
  times: z.number().int().positive().optional(),
});

export function registerPullRoutes(app: FastifyInstance, ctx: SimContext): void {
  const pulls = new Pulls(ctx);

  app.post('/api/pull', async (request, reply) => {
    const body = validateBody(PullBody, readJsonBody(request.body));
    const name = body.model || body.name;
    if (!name) throw new SimError('bad_request', 'model is required');
    const stream = body.stream !== false;
    if (!stream) {
      const download = pulls.start(pulls.resolve(name));
      const outcome = await download.done;
      if (outcome.kind === 'dropped') {
        reply.raw.destroy();
        return reply;
      }
      if (outcome.kind === 'error') throw new SimError('internal', outcome.message);
      return { status: 'success' };
    }
    reply.hijack();
    const out = new NdjsonResponse(reply.raw);
    await out.send({ status: 'pulling manifest' });
    let model;
    try {
      model = pulls.resolve(name);
    } catch (error) {
      ctx.counters.errorsTotal++;
      out.fail(200, (error as Error).message);
      return reply;
    }
    const download = pulls.start(model);
    const layer = { status: `pulling ${model.digest.slice(0, 12)}`, digest: `sha256:${model.digest}`, total: model.size_bytes };
    const onProgress = ({ completed }: { completed: number }) => void out.send({ ...layer, completed });
    download.on('progress', onProgress);
    const outcome = await download.done;
    download.off('progress', onProgress);
    if (outcome.kind === 'dropped') {
      out.destroy();
      return reply;
    }
    if (outcome.kind === 'error') {
      ctx.counters.errorsTotal++;
      out.fail(500, outcome.message);
      return reply;
    }
    await out.send({ ...layer, completed: model.size_bytes });
    await out.send({ status: 'verifying sha256 digest' });
    await out.send({ status: 'writing manifest' });
    await out.send({ status: 'success' });
    out.end();
    return reply;
  });

  app.delete('/api/delete', async (request, reply) => {
    const body = validateBody(DeleteBody, readJsonBody(request.body));
    const name = body.model || body.name;
    if (!name) throw new SimError('bad_request', 'model is required');
    const model = findModel(ctx.catalog, name);
    if (!model) throw new SimError('model_not_found', `model '${name}' not found`);
    ctx.catalog.delete(model.name);
    // Its runner, if loaded, goes as soon as it is idle.
    ctx.scheduler.expire(model.name);
    ctx.logger.info({ model: model.name }, 'model deleted');
    return reply.code(200).send();
  });

  // A second name for the same build, as `ollama cp`: it shares the blobs (no disk), so a
  // build stays servable under the copy when its own name is pulled to another build.
  app.post('/api/copy', async (request, reply) => {
    const body = validateBody(CopyBody, readJsonBody(request.body));
    const source = findModel(ctx.catalog, body.source);
    if (!source) throw new SimError('model_not_found', `model '${body.source}' not found`);
    const destination = canonicalModelName(body.destination);
    ctx.catalog.set(destination, { ...source, name: destination, modified_at: new Date().toISOString() });
    ctx.logger.info({ source: source.name, destination, digest: source.digest.slice(0, 12) }, 'model copied');
    return reply.code(200).send();
  });

  app.post('/sim/faults/pull', async (request) => {
    const body = validateBody(FaultBody, readJsonBody(request.body));
    pulls.injectFault(findModel(ctx.registry, body.model)?.name ?? body.model, body.kind, body.after_fraction, body.times);
    return { ok: true };
  });

  app.delete('/sim/faults/pull', async () => {
    pulls.clearFaults();
    return { ok: true };
  });

  app.get('/sim/disk', async () => {
    const used = diskUsedBytes(ctx.catalog);
    const total = ctx.config.disk_bytes;
    return { total_bytes: total, used_bytes: used, free_bytes: total > 0 ? Math.max(0, total - used) : null };
  });
}
