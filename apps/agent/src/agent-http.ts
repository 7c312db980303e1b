import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { RedisConnection } from '@switchyard/redis';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { failureReason } from './backend-warnings.js';
import type { ModelInventory } from './model-inventory.js';

/** A PING slower than this makes Redis "not ready": a probe must answer within its own timeout (kubelet: 1 s). */
const REDIS_PING_TIMEOUT_MS = 1_000;

/** What `/readyz` checks, each `ok` or why not. */
export interface Readiness {
  ready: boolean;
  /** The checks that are not `ok`. */
  notReady: string[];
  checks: {
    /** `starting` until start-up has finished, `draining` once it stops. */
    agent: string;
    redis: string;
    /** The backend answered the last model-list read (every INVENTORY_REFRESH_MS). */
    backend: string;
    /** The backend's model list has been read at least once. */
    inventory: string;
  };
}

export interface AgentHttpOptions {
  host: string;
  /** 0 takes a free port; `url` says which. */
  port: number;
  agentId: string;
  /** What `/metrics` serves. */
  registry: Registry;
  /** The agent's command connection (its status, and a PING). */
  redis: Pick<RedisConnection, 'status' | 'ping'>;
  inventory: Pick<ModelInventory, 'backendReachable' | 'lastError'>;
  logger: Logger;
}

export interface AgentHttp {
  /** Where it listens, e.g. `http://127.0.0.1:41234`. */
  readonly url: string;
  /** Start-up has finished: `/readyz` may answer 200. */
  ready(): void;
  /** The agent is stopping: `/readyz` answers 503 (`draining`) from now on. */
  stopping(): void;
  readiness(): Promise<Readiness>;
  close(): Promise<void>;
}

/**
 * The agent's own HTTP port: `/healthz` (the process answers), `/readyz` (Redis and the
 * backend answer, the model list has been read, start-up done) and `/metrics` (Prometheus).
 * A plain node:http server: three read-only routes need no framework, and the agent has none.
 * It listens from the start of start-up, so a liveness probe is answered while the agent
 * waits for Redis, and readiness says what it waits for.
 */
export async function startAgentHttp(options: AgentHttpOptions): Promise<AgentHttp> {
  const { redis, inventory, registry, logger } = options;
  let phase: 'starting' | 'ready' | 'draining' = 'starting';
  // Sticky: once the agent has had a model list, it keeps one (a later failed read keeps the last).
  let inventoryRead = false;

  const redisCheck = async (): Promise<string> => {
    // A connection that is not ready queues commands until it is (the agent's wait for ever): do not PING into that.
    if (redis.status !== 'ready') return `not connected (${redis.status})`;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<string>((resolve) => {
      timer = setTimeout(() => resolve(`no answer to PING within ${REDIS_PING_TIMEOUT_MS} ms`), REDIS_PING_TIMEOUT_MS);
    });
    const ping = redis.ping().then(
      () => 'ok',
      (error: unknown) => `PING failed: ${failureReason(error)}`,
    );
    try {
      return await Promise.race([ping, timeout]);
    } finally {
      clearTimeout(timer);
    }
  };

  const readiness = async (): Promise<Readiness> => {
    const reachable = inventory.backendReachable;
    inventoryRead ||= reachable;
    const checks = {
      agent: phase === 'ready' ? 'ok' : phase,
      redis: await redisCheck(),
      backend: reachable ? 'ok' : inventory.lastError === undefined ? 'not read yet' : `unreachable (${failureReason(inventory.lastError)})`,
      inventory: inventoryRead ? 'ok' : 'not read yet',
    };
    const notReady = Object.entries(checks)
      .filter(([, value]) => value !== 'ok')
      .map(([name]) => name);
    return { ready: notReady.length === 0, notReady, checks };
  };

  const send = (response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    response.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', ...headers });
    response.end(response.req.method === 'HEAD' ? undefined : text);
  };

  const handle = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const path = new URL(request.url ?? '/', 'http://agent').pathname;
    if (!['/healthz', '/readyz', '/metrics'].includes(path)) return send(response, 404, { error: { code: 'not_found', message: `no route ${path}` } });
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      return send(response, 405, { error: { code: 'method_not_allowed', message: `${path} answers GET only` } }, { allow: 'GET, HEAD' });
    }
    if (path === '/healthz') return send(response, 200, { status: 'ok', agent: options.agentId, pid: process.pid });
    if (path === '/readyz') {
      const state = await readiness();
      return send(response, state.ready ? 200 : 503, {
        status: state.ready ? 'ready' : 'not_ready',
        agent: options.agentId,
        ...(!state.ready && { not_ready: state.notReady }),
        checks: state.checks,
      });
    }
    send(response, 200, await registry.metrics(), { 'content-type': registry.contentType });
  };

  const server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      logger.warn({ err: error, url: request.url }, 'agent http request failed');
      if (!response.headersSent) send(response, 500, { error: { code: 'internal', message: (error as Error).message } });
      else response.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => reject(new Error(listenFailure(error, options.host, options.port), { cause: error })));
    server.listen({ host: options.host, port: options.port }, () => resolve());
  });
  // Never what keeps the process alive: a start-up that fails after this point exits as before.
  server.unref();
  const { port } = server.address() as AddressInfo;
  const url = `http://${reachableHost(options.host)}:${port}`;
  logger.info({ url }, 'agent http listening (/healthz, /readyz, /metrics)');

  let closing: Promise<void> | undefined;
  return {
    url,
    ready: () => {
      if (phase === 'starting') phase = 'ready';
    },
    stopping: () => {
      phase = 'draining';
    },
    readiness,
    close: () =>
      (closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Prometheus keeps its connection open between scrapes; close would wait for it.
        server.closeAllConnections();
      })),
  };
}

/** The address to reach a server listening on `host`: a wildcard listens on loopback too. */
function reachableHost(host: string): string {
  if (host === '0.0.0.0' || host === '::' || host === '') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}

/** One line for a failed listen, naming the setting to change. */
function listenFailure(error: NodeJS.ErrnoException, host: string, port: number): string {
  switch (error.code) {
    case 'EADDRINUSE':
      return `agent http: port ${port} is already in use: set AGENT_HTTP_PORT to a free port, or 0 for any free one`;
    case 'EACCES':
      return `agent http: port ${port} needs privileges this process lacks: set AGENT_HTTP_PORT to a port above 1023`;
    case 'EADDRNOTAVAIL':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `agent http: AGENT_HTTP_HOST ${host} is not an address of this machine: set it to one (0.0.0.0 listens on all)`;
    default:
      return `agent http: cannot listen on ${host}:${port} (${error.message}): set AGENT_HTTP_HOST and AGENT_HTTP_PORT to an address of this machine`;
  }
}
