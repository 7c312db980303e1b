import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { z } from 'zod';
import { ApiErrorCode, canonicalModelName } from '@switchyard/protocol';
import { access } from '../../access.js';
import type { CatalogModelStatus } from '@switchyard/protocol';
import { modelStatus } from '../../catalog-status.js';
import type { ApiContext } from '../../context.js';
import { quoteInput } from '../../errors.js';
import { CompatError, fromZodError } from '../compat-error.js';
import { ndjson } from './wire.js';

const PullRequest = z.object({
  model: z.string().min(1).max(300).optional(),
  name: z.string().min(1).max(300).optional(),
  insecure: z.boolean().optional(),
  stream: z.boolean().optional(),
});
const DeleteRequest = z.object({ model: z.string().min(1).max(300).optional(), name: z.string().min(1).max(300).optional() });

/** How often the fleet's progress is read while a pull streams. */
const POLL_MS = 250;
/** A fleet pull that makes no progress for this long ends with the nodes' problems. */
const STALL_MS = 10 * 60_000;

/** What a pull's wait ended with: the fleet holds the model, or why not. */
type PullEnd = { ok: true } | { ok: false; status: number; message: string };

function modelOf(body: unknown): string {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new CompatError(400, ApiErrorCode.invalidRequest, 'request body must be a JSON object');
  const parsed = PullRequest.safeParse(body);
  if (!parsed.success) throw fromZodError(parsed.error);
  const name = parsed.data.model ?? parsed.data.name;
  if (name === undefined) throw new CompatError(400, ApiErrorCode.invalidRequest, 'model is required', { param: 'model' });
  if (/\s/.test(name)) throw new CompatError(400, ApiErrorCode.invalidRequest, `invalid model name ${quoteInput(name)}`, { param: 'model' });
  return canonicalModelName(name);
}

/**
 * Ollama's model verbs, fleet-wide (admin key: they change every node's disk):
 * - `POST /api/pull` puts the model in the fleet catalog (every eligible node should hold
 *   it; an existing entry is kept) and streams the fleet's progress in Ollama's format, so
 *   `ollama pull` and ollama-js `pull()` pointed at Switchyard work unchanged. The total and
 *   completed bytes are summed over the nodes pulling it; `success` comes when every node
 *   the catalog places it on holds it. The pull goes on if the client leaves.
 * - `DELETE /api/delete` removes it from the fleet: every node deletes it once no job
 *   needs it (`removing` in the catalog; maintenance drops the entry when no node holds it).
 */
export function registerOllamaPull(scope: FastifyInstance, ctx: ApiContext): void {
  scope.post('/pull', access('admin'), async (request, reply) => {
    const model = modelOf(request.body);
    const stream = (request.body as { stream?: boolean }).stream !== false;
    const before = await ctx.catalog.get(model);
    if (!before || before.removing) {
      const { name: _name, created_at: _created, updated_at: _updated, removing: _removing, ...fields } = before ?? { name: model, created_at: 0, updated_at: 0 };
      await ctx.catalog.put(model, fields);
      request.log.info({ model, revived: before?.removing === true }, 'fleet pull: model added to the catalog');
    }
    // Taken back from a removal: a node may be deleting it from a pass begun before the put,
    // while its heartbeat still lists it; `ready` then counts only from later heartbeats.
    const baseline = before?.removing === true ? new Map((await ctx.fleet.agents()).map((agent) => [agent.id, agent.updated_at])) : undefined;
    // A model the registry does not have is taken back out of the catalog (unless it was there before).
    const undo = async () => {
      if (!before) await ctx.catalog.delete(model);
    };
    reply.header('x-switchyard-model-status', `/admin/models/${encodeURIComponent(model)}`);
    if (!stream) {
      // A client that leaves stops the polling (the pull goes on in the fleet).
      let gone = false;
      reply.raw.on('close', () => (gone = !reply.raw.writableFinished));
      const end = await waitForFleet(
        ctx,
        model,
        baseline,
        () => gone,
        () => undefined,
      );
      if (gone) return reply;
      if (end.ok) return { status: 'success' };
      if (end.status === 404) await undo();
      throw new CompatError(end.status, end.status === 404 ? ApiErrorCode.modelNotFound : ApiErrorCode.invalidRequest, end.message);
    }
    return streamPull(ctx, reply, model, baseline, undo);
  });

  scope.delete('/delete', access('admin'), async (request, reply) => {
    const model = modelOf(request.body);
    const [entry, agents] = await Promise.all([ctx.catalog.get(model), ctx.fleet.agents()]);
    const held = agents.some((agent) => agent.models_available.some((m) => m.name === model));
    if (!held && (!entry || entry.removing)) throw new CompatError(404, ApiErrorCode.modelNotFound, `model '${model}' not found`);
    await ctx.catalog.markRemoving(model);
    request.log.info({ model }, 'fleet delete: every node deletes the model once no job needs it');
    return reply.status(200).send();
  });
}

async function streamPull(
  ctx: ApiContext,
  reply: FastifyReply,
  model: string,
  baseline: ReadonlyMap<string, number> | undefined,
  undo: () => Promise<void>,
): Promise<FastifyReply> {
  reply.hijack();
  const raw = reply.raw;
  raw.writeHead(200, {
    'Content-Type': 'application/x-ndjson',
    'Cache-Control': 'no-cache',
    'X-Accel-Buffering': 'no',
    'x-switchyard-model-status': `/admin/models/${encodeURIComponent(model)}`,
  });
  raw.write(ndjson({ status: 'pulling manifest' }));
  let gone = false;
  raw.on('close', () => (gone = true));
  let last = { total: -1, completed: -1 };
  let end: PullEnd;
  try {
    end = await waitForFleet(
      ctx,
      model,
      baseline,
      () => gone,
      (status) => {
        const { total_bytes: total } = status.progress;
        // Never backwards within one stream (a node finishing drops out of the sum).
        const completed = Math.max(last.completed, Math.min(total, status.progress.completed_bytes));
        if (total === 0 || (total === last.total && completed === last.completed)) return;
        last = { total, completed };
        const digest = status.entry?.digest ?? status.nodes.find((node) => node.pull?.digest !== undefined)?.pull?.digest;
        raw.write(ndjson({ status: `pulling ${model}`, ...(digest !== undefined && { digest: `sha256:${digest}` }), total, completed }));
      },
    );
  } catch (error) {
    // The status is 200 already: a failure to read the fleet (Redis) ends the stream with Ollama's error line.
    reply.log.error({ err: error, model }, 'fleet pull: reading the fleet status failed');
    end = { ok: false, status: 503, message: `cannot read the fleet status of ${model}: ${error instanceof Error ? error.message : String(error)}` };
  }
  if (gone) return reply;
  if (end.ok) {
    raw.write(ndjson({ status: 'verifying sha256 digest' }));
    raw.write(ndjson({ status: 'writing manifest' }));
    raw.write(ndjson({ status: 'success' }));
  } else {
    if (end.status === 404) await undo();
    raw.write(ndjson({ error: end.message }));
  }
  raw.end();
  return reply;
}

/**
 * Polls the model's status until every wanted node holds it, the registry has no such model,
 * nothing can hold it, or progress stalls. With a `baseline` (each agent's heartbeat time when
 * the pull began), `ready` counts only once every node holding the model has sent two
 * heartbeats since: the first may predate a deletion the node had under way.
 */
async function waitForFleet(
  ctx: ApiContext,
  model: string,
  baseline: ReadonlyMap<string, number> | undefined,
  stopped: () => boolean,
  onStatus: (status: CatalogModelStatus) => void,
): Promise<PullEnd> {
  let lastProgress = Date.now();
  let lastMark = '';
  const fresh = new Map<string, Set<number>>();
  while (!stopped()) {
    const [entry, agents] = await Promise.all([ctx.catalog.get(model), ctx.fleet.agents()]);
    const status = modelStatus(model, entry, agents);
    onStatus(status);
    if (baseline) {
      for (const agent of agents) {
        if (agent.updated_at > (baseline.get(agent.id) ?? -1)) fresh.set(agent.id, (fresh.get(agent.id) ?? new Set()).add(agent.updated_at));
      }
    }
    const settled = !baseline || status.nodes.every((node) => node.state !== 'holds' || (fresh.get(node.agent)?.size ?? 0) >= 2);
    if (status.state === 'ready' && settled) return { ok: true };
    const missing = status.nodes.find((node) => node.pull?.cause === 'not_found');
    if (missing) return { ok: false, status: 404, message: 'pull model manifest: file does not exist' };
    if (status.state === 'short') return { ok: false, status: 409, message: `no node can hold ${model}: ${status.problems.join('; ') || 'no eligible node'}` };
    // Someone else changed the catalog while this pull waited (DELETE /api/delete, DELETE /admin/models).
    if (status.state === 'removing') return { ok: false, status: 409, message: `${model} is being removed from the fleet (DELETE /api/delete) while it was pulled` };
    if (!entry) return { ok: false, status: 409, message: `${model} left the fleet catalog while it was pulled` };
    // Progress: bytes downloaded, or one more node holding the model.
    const mark = `${status.progress.completed_bytes}/${status.holding}`;
    if (mark !== lastMark) {
      lastMark = mark;
      lastProgress = Date.now();
    }
    if (Date.now() - lastProgress > STALL_MS)
      return { ok: false, status: 409, message: `the fleet pull of ${model} made no progress for ${STALL_MS / 60_000} min: ${status.problems.join('; ')}` };
    await sleep(POLL_MS);
  }
  return { ok: false, status: 499, message: 'client gone' };
}
