/**
 * The real Switchyard in front of the simulated fleet: Redis (REDIS_URL, else a spawned
 * redis-server), the API as its own process (apps/api/dist/main.js, configured through its
 * environment like an operator would), and one agent per node in an agent-host process.
 * Everything under a fresh key prefix, so runs never see each other's queues.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseConfig as parseApiConfig } from '@switchyard/api';
import { freePort, provideRedis, type RedisHandle } from '@switchyard/testing/redis-server';
import { request } from 'undici';
import type { AgentHostCommand, AgentHostMessage } from './agent-host.js';
import { API_SCALING, scaleConfig, type ScaledField } from './agent-scaling.js';
import type { SimSettings } from './fleet-config.js';
import type { FleetNode } from './sim-fleet.js';

const ROOT = resolve(fileURLToPath(import.meta.url), '../../../..');
const API_MAIN = join(ROOT, 'apps', 'api', 'dist', 'main.js');
const AGENT_HOST = fileURLToPath(new URL('./agent-host.js', import.meta.url));

/** Environment names of the API settings the bench scales (apps/api/src/config.ts ENV_NAMES). */
const API_ENV: Readonly<Record<string, string>> = { fleetCacheMs: 'FLEET_CACHE_MS' };

export interface SwitchyardStackOptions {
  nodes: readonly FleetNode[];
  settings: SimSettings;
  /** Jobs one agent runs at once across all models. */
  agentSlots: number;
  agentOverrides: Record<string, unknown>;
  /** More API environment (bench:trace's tenants: API_KEYS), applied over the bench's own. */
  apiEnv?: Record<string, string>;
  /** With tenant keys set, the fleet endpoints need an admin key: it is configured and used for the readiness checks. */
  adminKey?: string;
  /** Key prefix stem (default bench-fleet). */
  prefixName?: string;
}

export interface SwitchyardStack {
  apiUrl: string;
  redisSource: RedisHandle['source'];
  prefix: string;
  /** Agent id → node name. */
  nodeOfAgent: ReadonlyMap<string, string>;
  describe(): Record<string, unknown>;
  stop(): Promise<void>;
}

async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    await sleep(100);
  }
  throw new Error(`${what} not ready within ${timeoutMs} ms${last ? `: ${String(last)}` : ''}`);
}

async function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

export async function startSwitchyard(options: SwitchyardStackOptions): Promise<SwitchyardStack> {
  const { nodes, settings } = options;
  const redis = await provideRedis();
  const prefix = `${options.prefixName ?? 'bench-fleet'}-${Date.now().toString(36)}`;
  const children: ChildProcess[] = [];
  // If the bench dies without stopping us (a crash, process.exit), take our processes along:
  // the spawned redis-server and the API would otherwise outlive it.
  const redisChild = (redis as RedisHandle & { child?: ChildProcess }).child;
  const killAll = () => {
    for (const child of [...children, ...(redisChild ? [redisChild] : [])]) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  };
  process.once('exit', killAll);
  const cleanup = async () => {
    for (const child of children.reverse()) await stopChild(child, 10_000);
    await redis.stop();
  };
  try {
    // API: its own process, configured like an operator would, with its periods scaled.
    const port = await freePort();
    const apiDefaults = parseApiConfig({ redisUrl: redis.url }) as unknown as Record<string, unknown>;
    const apiScaled = scaleConfig(apiDefaults, API_SCALING, settings.time_scale);
    const apiEnv: Record<string, string> = {
      REDIS_URL: redis.url,
      REDIS_PREFIX: prefix,
      HOST: '127.0.0.1',
      PORT: String(port),
      LOG_LEVEL: 'warn',
      JOB_RETENTION_SECONDS: '3600',
    };
    for (const [field, value] of Object.entries(apiScaled.overrides)) {
      const name = API_ENV[field];
      if (name) apiEnv[name] = String(value);
    }
    Object.assign(apiEnv, options.apiEnv, options.adminKey !== undefined && { ADMIN_API_KEYS: options.adminKey });
    const authorization = options.adminKey !== undefined ? { authorization: `Bearer ${options.adminKey}` } : {};
    // Its log (warnings and errors only) goes to our stderr, out of the way of the table.
    const api = spawn(process.execPath, [...process.execArgv, API_MAIN], { env: { ...process.env, ...apiEnv }, stdio: ['ignore', 2, 'inherit'] });
    children.push(api);
    const apiUrl = `http://127.0.0.1:${port}`;

    // Agents: one per node, in one helper process.
    const agentHost = fork(AGENT_HOST, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    children.push(agentHost);
    const agentIds = nodes.map((node) => `agent-${node.name}`);
    let stopped: (() => void) | undefined;
    const ready = new Promise<{ config: Record<string, unknown>; scaling: ScaledField[] }>((done, fail) => {
      agentHost.on('message', (message: AgentHostMessage) => {
        if (message.type === 'ready') done(message);
        else if (message.type === 'failed') fail(new Error(`agents failed to start: ${message.message}`));
        else if (message.type === 'stopped') stopped?.();
      });
      agentHost.once('exit', (code) => fail(new Error(`agent host exited with code ${code}`)));
    });
    const command = (message: AgentHostCommand) => agentHost.send(message);
    command({
      type: 'start',
      redisUrl: redis.url,
      redisPrefix: prefix,
      timeScale: settings.time_scale,
      agents: nodes.map((node, index) => ({ id: agentIds[index] as string, backendUrl: node.url, vramBytes: node.vram_bytes, gpuName: node.gpu_name })),
      common: {
        slots: options.agentSlots,
        backendParallel: settings.num_parallel,
        backendMaxLoaded: settings.max_loaded_models,
        backendNumCtx: settings.num_ctx,
      },
      overrides: options.agentOverrides,
    });
    const agentInfo = await ready;

    await waitFor('API', 20_000, async () => {
      const response = await request(`${apiUrl}/readyz`);
      await response.body.dump();
      return response.statusCode === 200 ? true : undefined;
    });
    // Every agent live with its catalog, as the API sees the fleet.
    await waitFor('fleet', 20_000, async () => {
      const response = await request(`${apiUrl}/v1/agents`, { headers: authorization });
      const body = (await response.body.json()) as { data?: Array<{ id: string; models_available?: unknown[] }> };
      const live = (body.data ?? []).filter((agent) => agentIds.includes(agent.id) && (agent.models_available?.length ?? 0) > 0);
      return live.length === nodes.length ? true : undefined;
    });

    return {
      apiUrl,
      redisSource: redis.source,
      prefix,
      nodeOfAgent: new Map(nodes.map((node, index) => [agentIds[index] as string, node.name])),
      describe: () => ({
        processes: 'API (apps/api/dist/main.js) and one agent-host process running one startAgent per node; gpu-sim nodes in their own process',
        redis: redis.source,
        prefix,
        agent_config: agentInfo.config,
        agent_scaling: agentInfo.scaling,
        api_env: Object.fromEntries(Object.entries(apiEnv).filter(([name]) => !['REDIS_URL', 'PORT', 'API_KEYS', 'ADMIN_API_KEYS'].includes(name))),
        api_scaling: apiScaled.report,
      }),
      stop: async () => {
        // API first so no new work arrives, then the agents drain, then Redis.
        await stopChild(api, 10_000);
        if (agentHost.exitCode === null) {
          const said = new Promise<void>((done) => (stopped = done));
          const exited = new Promise<void>((done) => agentHost.once('exit', () => done()));
          command({ type: 'stop' });
          const timer = setTimeout(() => agentHost.kill('SIGKILL'), 20_000);
          await Promise.race([exited, said.then(() => exited)]);
          clearTimeout(timer);
        }
        await redis.stop();
        process.off('exit', killAll);
      },
    };
  } catch (error) {
    await cleanup();
    throw error;
  }
}
