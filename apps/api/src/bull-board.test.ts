import Fastify, { type RouteOptions } from 'fastify';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { formatJobFailure, pinnedQueueModel, redisKeys } from '@switchyard/protocol';
import { QueueRegistry } from '@switchyard/redis';
import { testRedis, uniquePrefix } from '@switchyard/testing';
import { trackAccessDeclarations } from './access.js';
import { BULL_BOARD_PATH, boardQueueLabel, boardRouteAccess, jobLabel, registerBullBoard } from './bull-board.js';

const DIGEST = '7b112d2113351740618d67ff658d82b1031fec1b949122600327d96b496fbd3c';

describe('Bull Board names', () => {
  it('shows the model, and a pinned queue as a pinned digest of its model (never model@digest), never the encoded queue name', () => {
    expect(boardQueueLabel('llama3.1:70b')).toBe('llama3.1:70b');
    expect(boardQueueLabel(pinnedQueueModel('llama3.1:70b', `sha256:${DIGEST}`))).toBe('llama3.1:70b · pinned sha256:7b112d211335');
    expect(boardQueueLabel(pinnedQueueModel('llama3.1:70b', `sha256:${DIGEST}`), Infinity)).toBe(`llama3.1:70b · pinned sha256:${DIGEST}`);
    expect(boardQueueLabel(pinnedQueueModel('llama3.1:70b', `sha256:${DIGEST}`))).not.toContain('@');
    expect(boardQueueLabel('hf.co/org/repo:Q4_K_M')).toBe('hf.co/org/repo:Q4_K_M');
  });

  it('labels a job that ended cancelled or expired as such, not as a failed generation', () => {
    const ended = { name: 'generate', finishedOn: 1 };
    expect(jobLabel({ ...ended, failedReason: formatJobFailure('cancelled', 'cancelled by client') })).toBe('cancelled: cancelled by client');
    expect(jobLabel({ ...ended, failedReason: formatJobFailure('deadline_exceeded', 'deadline passed 20 ms ago') })).toBe('expired: deadline passed 20 ms ago');
    expect(jobLabel({ ...ended, failedReason: formatJobFailure('backend_error', 'out of memory') })).toBe('generate: failed (backend_error)');
    expect(jobLabel({ ...ended, returnvalue: { text: 'hi' } })).toBe('generate');
    // A job retried after a failed attempt keeps that attempt's reason: it did not end that way.
    expect(jobLabel({ name: 'generate', failedReason: formatJobFailure('agent_lost', 'agent-0 stopped') })).toBe('generate');
    expect(jobLabel({ ...ended, failedReason: 'agent_lost: gone', returnvalue: { text: 'done on retry' } })).toBe('generate');
  });
});

describe('Bull Board routes', () => {
  const redis = new Redis(testRedis(), { lazyConnect: true, maxRetriesPerRequest: 1 });
  afterAll(() => redis.quit());

  it('declares every route of the board: GET/HEAD for admins, every other method never served', async () => {
    expect(boardRouteAccess({ method: 'GET' })).toBe('admin');
    expect(boardRouteAccess({ method: ['GET', 'HEAD'] })).toBe('admin');
    expect(boardRouteAccess({ method: 'PATCH' })).toBe('none');
    expect(boardRouteAccess({ method: ['GET', 'PUT'] })).toBe('none');

    const app = Fastify();
    const declarations = trackAccessDeclarations(app);
    const routes: RouteOptions[] = [];
    app.addHook('onRoute', (route: RouteOptions) => void routes.push(route));
    const queues = new QueueRegistry(redis, redisKeys(uniquePrefix('board')));
    await registerBullBoard(app, queues);
    app.get('/elsewhere', async () => 'not the board');
    await app.ready();

    const board = routes.filter((route) => route.url.startsWith(BULL_BOARD_PATH));
    const methodsOf = (route: RouteOptions) => [route.method].flat();
    const writes = board.filter((route) => methodsOf(route).some((method) => method !== 'GET' && method !== 'HEAD'));
    // Bull Board 9.10.1 registers 23 write routes (retry, clean, update-data, pause, obliterate, …).
    expect(writes.length).toBeGreaterThanOrEqual(23);
    expect(writes.map((route) => `${methodsOf(route).join(',')} ${route.url}`)).toContain(`PATCH ${BULL_BOARD_PATH}/api/queues/:queueName/:jobId/update-data`);
    for (const route of board) {
      const level = (route.config as { access?: string } | undefined)?.access;
      expect(level, `${methodsOf(route).join(',')} ${route.url}`).toBe(writes.includes(route) ? 'none' : 'admin');
    }
    // Only the board's scope is declared by the board: the route outside it still has no level.
    expect(() => declarations.assertDeclared()).toThrow(/GET \/elsewhere/);
    await app.close();
    await queues.close();
  });
});
