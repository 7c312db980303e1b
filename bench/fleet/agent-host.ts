/**
 * Child process that runs one Switchyard agent per simulated node (`startAgent`), each with
 * its own Redis connections, backend and GPU size, away from the load generator's event loop.
 * In a real fleet each agent is its own process on its own machine; on this 2-core box four
 * extra Node processes would cost more in scheduling than they isolate.
 *
 * Protocol: parent → `{type:'start', ...AgentHostStart}`, later `{type:'stop'}`;
 * child → `{type:'ready', config}`, `{type:'failed', message}`, `{type:'stopped'}`.
 */
import { pino } from 'pino';
import { parseConfig, startAgent, type RunningAgent } from '@switchyard/agent';
import { AGENT_SCALING, scaleConfig, type ScaledField } from './agent-scaling.js';

export interface AgentHostStart {
  redisUrl: string;
  redisPrefix: string;
  timeScale: number;
  agents: Array<{ id: string; backendUrl: string; vramBytes: number; gpuName: string }>;
  /** Fixed settings for every agent (slots, backend parallel, …), applied after scaling. */
  common: Record<string, unknown>;
  /** Operator overrides from the command line, applied last. */
  overrides: Record<string, unknown>;
}

export type AgentHostCommand = ({ type: 'start' } & AgentHostStart) | { type: 'stop' };
export type AgentHostMessage = { type: 'ready'; config: Record<string, unknown>; scaling: ScaledField[] } | { type: 'failed'; message: string } | { type: 'stopped' };

function send(message: AgentHostMessage): void {
  process.send?.(message);
}

let agents: RunningAgent[] = [];

async function start(options: AgentHostStart): Promise<void> {
  try {
    // BENCH_AGENT_LOG_LEVEL=debug shows the agents' placement reasoning (on stderr).
    const logger = pino({ level: process.env.BENCH_AGENT_LOG_LEVEL ?? 'warn', base: { service: 'agent' } }, pino.destination(2));
    const defaults = parseConfig({ redisUrl: options.redisUrl }) as unknown as Record<string, unknown>;
    const { overrides: scaled, report } = scaleConfig(defaults, AGENT_SCALING, options.timeScale);
    const configs = options.agents.map((agent) =>
      parseConfig({
        ...scaled,
        ...options.common,
        redisUrl: options.redisUrl,
        redisPrefix: options.redisPrefix,
        backendUrl: agent.backendUrl,
        agentId: agent.id,
        gpuVramBytes: [agent.vramBytes],
        gpuName: agent.gpuName,
        // No nvidia-smi here; make sure a stray one on PATH is not read as this node's GPU.
        nvidiaSmiPath: '/nonexistent/nvidia-smi',
        logLevel: 'warn',
        ...options.overrides,
      }),
    );
    agents = await Promise.all(configs.map((config) => startAgent(config, { logger })));
    const shown = { ...(configs[0] as unknown as Record<string, unknown>) };
    for (const field of ['redisUrl', 'backendUrl', 'agentId', 'gpuVramBytes', 'gpuName']) delete shown[field];
    send({ type: 'ready', config: shown, scaling: report });
  } catch (error) {
    send({ type: 'failed', message: (error as Error).stack ?? String(error) });
    process.exit(1);
  }
}

async function stop(): Promise<void> {
  // Bounded: a drain that hangs must not hold the whole benchmark.
  await Promise.race([Promise.allSettled(agents.map((agent) => agent.close())), new Promise((resolve) => setTimeout(resolve, 15_000).unref())]);
  send({ type: 'stopped' });
  process.exit(0);
}

process.on('message', (message: AgentHostCommand) => {
  if (message.type === 'start') void start(message);
  else if (message.type === 'stop') void stop();
});
process.on('disconnect', () => process.exit(0));
