import type { FastifyInstance, RouteOptions } from 'fastify';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import { ApiErrorCode, JobErrorCode, parseJobFailure, splitQueueModel } from '@switchyard/protocol';
import type { QueueRegistry } from '@switchyard/redis';
import { declareAccessOfPluginRoutes, type Access } from './access.js';

export const BULL_BOARD_PATH = '/admin/queues';

type ModelQueue = ConstructorParameters<typeof BullMQAdapter>[0];

/** Hex digits of a pinned digest the board shows, as `docker images` shortens image ids. */
const SHORT_DIGEST = 12;

/**
 * Bull Board at /admin/queues, an inspection dashboard over every model queue. Queues this
 * process opens later (a model first submitted after start-up, or one another replica
 * created, found by the periodic `discover`) are added as they appear.
 *
 * Read-only. A retry from the board re-ran a cancelled job on a GPU and turned it
 * `completed` while its stream still ended `cancelled` and admission never counted it; an
 * edit rewrote a queued job's request behind the API. The board knows nothing of the event
 * log, the admission ledger or the job index, so none of its writes can be right: every
 * queue is in `readOnlyMode` (the UI hides the buttons and the board's handlers answer 405),
 * and every route of the board's plugin is declared: GET/HEAD `admin`, any other method
 * `none` (never served). Operators act through /admin/jobs (routes/admin-jobs.ts).
 */
export async function registerBullBoard(app: FastifyInstance, queues: QueueRegistry): Promise<void> {
  const serverAdapter = new FastifyAdapter();
  serverAdapter.setBasePath(BULL_BOARD_PATH);
  const board = createBullBoard({
    queues: [],
    serverAdapter,
    options: { uiConfig: { boardTitle: 'Switchyard queues' } },
  });
  const names = new BoardNames();
  const add = (queueKey: string, queue: ModelQueue) => board.addQueue(modelQueueAdapter(queue, queueKey, names.claim(queueKey)));
  for (const [queueKey, queue] of queues.opened()) add(queueKey, queue);
  queues.on('queue', add);
  // A scope of its own, so the access declarations apply to the board's routes only.
  await app.register(async (scope) => {
    declareAccessOfPluginRoutes(scope, boardRouteAccess);
    scope.addHook('onSend', async (_request, reply, payload) => (reply.statusCode >= 400 ? withDocumentedErrorShape(reply.statusCode, payload) : payload));
    await scope.register(serverAdapter.registerPlugin(), { prefix: BULL_BOARD_PATH });
  });
}

/**
 * The board's API answers errors as `{error: {key: 'ERRORS.QUEUE_NOT_FOUND'}}`, a translation
 * key for its UI. They leave in Switchyard's documented `{error: {code, message}}` instead,
 * the key kept in the message: on a read-only board the only errors are unknown queues and
 * jobs, which its page shows as a plain "not found" either way.
 */
export function withDocumentedErrorShape(status: number, payload: unknown): unknown {
  if (typeof payload !== 'string') return payload;
  let body: { error?: { key?: unknown; code?: unknown }; message?: unknown };
  try {
    body = JSON.parse(payload) as typeof body;
  } catch {
    return payload;
  }
  const key = body.error?.key;
  if (typeof key !== 'string' || body.error?.code !== undefined) return payload;
  const code =
    status === 404 ? ApiErrorCode.notFound : status === 405 ? ApiErrorCode.methodNotAllowed : status < 500 ? ApiErrorCode.invalidRequest : ApiErrorCode.internalError;
  const words = key
    .replace(/^ERRORS\./, '')
    .toLowerCase()
    .replaceAll('_', ' ');
  const message = typeof body.message === 'string' ? `${words}: ${body.message}` : `${words} (${key})`;
  return JSON.stringify({ error: { code, message } });
}

/** Reading the board (its page, static files, GET API) needs an admin key; nothing else is served. */
export function boardRouteAccess(route: Pick<RouteOptions, 'method'>): Access {
  const methods = [route.method].flat().map((method) => method.toUpperCase());
  return methods.every((method) => method === 'GET' || method === 'HEAD') ? 'admin' : 'none';
}

/**
 * What a person reads for a queue key: the model name, and for a digest-pinned queue the
 * model it belongs to and a short digest (`llama3.1:70b · pinned sha256:7b112d211335`), so
 * it is never taken for a model of its own (`model@digest`, which no client can use). Never
 * the BullMQ queue name (`{llama3.1~3a70b}`), which is an encoding for Redis. The board sorts
 * by name, so a model's pinned queues come right after its own queue.
 */
export function boardQueueLabel(queueKey: string, digestLength = SHORT_DIGEST): string {
  const { model, digest } = splitQueueModel(queueKey);
  return digest === undefined ? model : `${model} · pinned sha256:${digest.slice(0, digestLength)}`;
}

/**
 * Board names, unique per process. The board keys its queues by name (and its sidebar and
 * URLs show that key), so two pinned queues of one model whose digests share the short
 * prefix would hide one another; the later one keeps its full digest.
 */
class BoardNames {
  private readonly taken = new Map<string, string>();

  claim(queueKey: string): string {
    const short = boardQueueLabel(queueKey);
    const name = this.taken.has(short) && this.taken.get(short) !== queueKey ? boardQueueLabel(queueKey, Infinity) : short;
    this.taken.set(name, queueKey);
    return name;
  }
}

/**
 * The board's view of one model queue. Bull Board keys a queue, labels it in the sidebar and
 * builds its URLs from `getName()` (by default BullMQ's queue name); here that is the
 * readable name. Every job operation still goes to the BullMQ queue itself.
 */
class ModelQueueAdapter extends BullMQAdapter {
  constructor(
    queue: ModelQueue,
    private readonly boardName: string,
    options: ConstructorParameters<typeof BullMQAdapter>[1],
  ) {
    super(queue, options);
  }

  override getName(): string {
    return this.boardName;
  }
}

function modelQueueAdapter(queue: ModelQueue, queueKey: string, name: string): BullMQAdapter {
  const { model, digest } = splitQueueModel(queueKey);
  // A pinned queue is part of its model, not a model: its name (the board's sidebar, cards,
  // heading and URL) says so, and sorts right after the model's own queue.
  const adapter = new ModelQueueAdapter(queue, name, {
    readOnlyMode: true,
    displayName: name,
    description: digest === undefined ? `jobs for model ${model}` : `jobs for model ${model} pinned to digest sha256:${digest}`,
  });
  adapter.setFormatter('name', jobLabel);
  return adapter;
}

/**
 * A job's name on the board. BullMQ has no state for a job that was cancelled or expired
 * while an agent held it: the agent fails it with `cancelled: …` or `deadline_exceeded: …`
 * (protocol formatJobFailure), so the board lists it under Failed. The label says what it
 * is. Only a finished job without a result ended that way: a job retried after a failed
 * attempt keeps that attempt's `failedReason` while it waits and after it completes.
 */
export function jobLabel(job: { name?: string; failedReason?: string; finishedOn?: number; returnvalue?: unknown }): string {
  const name = job.name || 'job';
  const failed = Boolean(job.failedReason) && job.finishedOn !== undefined && job.returnvalue == null;
  if (!failed) return name;
  const { code, message } = parseJobFailure(job.failedReason);
  if (code === JobErrorCode.cancelled) return `cancelled: ${message}`;
  if (code === JobErrorCode.deadlineExceeded) return `expired: ${message}`;
  return `${name}: failed (${code})`;
}
