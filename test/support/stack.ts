import { pino, type Logger } from 'pino';
import { onTestFinished } from 'vitest';
import { createApi, parseConfig as parseApiConfig, type Api, type ApiConfigInput } from '@switchyard/api';
import { parseConfig as parseAgentConfig, startAgent, type AgentConfigInput, type RunningAgent } from '@switchyard/agent';
import { createGpuSim, type GpuSimConfigInput, type Hold, type HoldOptions } from '@switchyard/gpu-sim';
import { redisTarget, type RedisNode, type RedisTarget } from '@switchyard/redis';
import { testRedis, uniquePrefix } from '@switchyard/testing';

type GpuSim = Awaited<ReturnType<typeof createGpuSim>>;

export interface StackOptions {
  /** One gpu-sim + one agent per entry. */
  nodes?: Array<{ sim?: Partial<GpuSimConfigInput>; agent?: Partial<AgentConfigInput> }>;
  api?: Partial<ApiConfigInput>;
  logLevel?: string;
  /** A Redis of the test's own (one it restarts, say) instead of the test run's. */
  redisUrl?: string;
  /** A Redis Cluster's nodes (`spawnRedisCluster`) instead: the API and agents run on it (`REDIS_CLUSTER_NODES`). */
  redisClusterNodes?: RedisNode[];
}

export interface Stack {
  apiUrl: string;
  prefix: string;
  /** The single Redis, or with `redisClusterNodes` the test run's (unused by the stack). */
  redisUrl: string;
  /** What the stack runs on: connect with `createRedis(stack.redisTarget, …)`. */
  redisTarget: RedisTarget;
  api: Api;
  sims: GpuSim[];
  agents: RunningAgent[];
  logger: Logger;
  /** Starts another agent (for failure tests) against an existing sim. */
  addAgent(simIndex: number, agent?: Partial<AgentConfigInput>): Promise<RunningAgent>;
  /**
   * Holds the generations it catches on every node's simulator (a job may land on any of
   * them) until `release()`: see `GpuSim.hold`. `paused` and `reached(n)` count all nodes.
   * Call it inside a test: it is released when the test ends, pass or fail, so a failed test
   * never leaves a held job in a slot of a stack the next tests share.
   */
  hold(options?: HoldOptions): Hold;
  close(): Promise<void>;
}

/** A fast simulator: tokens in about a millisecond each, loads in a few. */
export const FAST_SIM: Partial<GpuSimConfigInput> = {
  port: 0,
  time_scale: 0.02,
  tokens_per_s: 50,
  log_level: 'silent',
};

/**
 * Why tests hold jobs rather than make them long: a job's length is wall-clock time, and a
 * loaded machine can spend all of it before the test's next request arrives (a DELETE that
 * finds the job finished answers 409). A held job cannot end until the test releases it or
 * cancels it, so "still running" and "still queued behind it" are facts, not bets.
 */
function holdOnEvery(sims: GpuSim[], options: HoldOptions): Hold {
  const holds = sims.map((sim) => sim.hold(options));
  const paused = () => holds.reduce((sum, hold) => sum + hold.paused, 0);
  const release = () => {
    for (const hold of holds) hold.release();
  };
  onTestFinished(release);
  return {
    get paused() {
      return paused();
    },
    async reached(count = 1, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      while (paused() < count) {
        if (Date.now() > deadline) throw new Error(`hold: ${paused()} of ${count} generation(s) paused within ${timeoutMs} ms`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    },
    release,
  };
}

/**
 * The whole path in one process, on the real Redis of the test run: gpu-sim nodes over
 * real HTTP, one agent each, and the API listening on a free port. Every stack has its
 * own key prefix, so stacks never see each other's queues.
 */
export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const redisUrl = options.redisUrl ?? testRedis();
  const redisClusterNodes = options.redisClusterNodes;
  const prefix = uniquePrefix('e2e');
  const logger = pino({ level: options.logLevel ?? process.env.TEST_LOG_LEVEL ?? 'silent' });
  const nodes = options.nodes ?? [{}];
  const sims: GpuSim[] = [];
  const agents: RunningAgent[] = [];
  let api: Api | undefined;
  let agentCounter = 0;

  const addAgent = async (simIndex: number, agent: Partial<AgentConfigInput> = {}) => {
    const sim = sims[simIndex]!;
    const running = await startAgent(
      parseAgentConfig({
        redisUrl,
        redisClusterNodes,
        redisPrefix: prefix,
        backendUrl: sim.url,
        agentId: `agent-${agentCounter++}`,
        heartbeatIntervalMs: 200,
        heartbeatTtlMs: 1_000,
        inventoryRefreshMs: 500,
        sweepIntervalMs: 100,
        lockDurationMs: 5_000,
        stalledIntervalMs: 1_000,
        // The simulator's defaults (4 parallel requests, 3 models resident), as an operator
        // would configure the agent in front of an Ollama with those settings.
        backendParallel: 4,
        backendMaxLoaded: 3,
        placementIntervalMs: 100,
        ...agent,
      }),
      { logger: logger.child({ component: 'agent' }) },
    );
    agents.push(running);
    return running;
  };

  try {
    for (const node of nodes) sims.push(await createGpuSim({ ...FAST_SIM, ...node.sim }, { logger: logger.child({ component: 'gpu-sim' }) }));
    for (const [index, node] of nodes.entries()) await addAgent(index, node.agent);
    api = await createApi(parseApiConfig({ redisUrl, redisClusterNodes, redisPrefix: prefix, host: '127.0.0.1', port: 0, fleetCacheMs: 50, ...options.api }), {
      logger: logger.child({ component: 'api' }),
    });
    const apiUrl = await api.listen();
    const startedApi = api;
    return {
      apiUrl,
      prefix,
      redisUrl,
      redisTarget: redisTarget({ redisUrl, redisClusterNodes }),
      api: startedApi,
      sims,
      agents,
      logger,
      addAgent,
      hold: (holdOptions = {}) => holdOnEvery(sims, holdOptions),
      close: async () => {
        await startedApi.close();
        await Promise.all(agents.map((agent) => agent.close()));
        await Promise.all(sims.map((sim) => sim.close()));
      },
    };
  } catch (error) {
    await api?.close().catch(() => undefined);
    await Promise.all(agents.map((agent) => agent.close().catch(() => undefined)));
    await Promise.all(sims.map((sim) => sim.close().catch(() => undefined)));
    throw error;
  }
}
