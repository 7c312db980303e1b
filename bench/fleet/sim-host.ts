/**
 * Child process that runs the fleet's gpu-sim nodes, one `createGpuSim` each, away from the
 * load generator's event loop (on 2 cores, the token streams of four simulated GPUs and the
 * client that reads them should not share one thread).
 *
 * It reports every model load and unload to the parent over IPC, with the instant it
 * happened: the bench needs, per request, whether its model was loading on the node that
 * served it, and /sim/stats only has totals. The events come from the simulator's scheduler
 * log lines ('loading model', 'model loaded', 'model unloaded'), caught in a pino hook before
 * anything is serialised; the parent cross-checks their count against loads_total.
 *
 * Protocol: parent → `{type:'start', nodes:[{name, config}]}`, later `{type:'stop'}`;
 * child → `{type:'ready', nodes:[{name, url}]}`, `{type:'event', ...SimEvent}`, `{type:'stopped'}`.
 */
import { pino, type Logger } from 'pino';
import { createGpuSim, type GpuSim, type GpuSimConfigInput } from '@switchyard/gpu-sim';

export type SimEventKind = 'load_start' | 'load_end' | 'unload';

export interface SimEvent {
  node: string;
  kind: SimEventKind;
  model: string;
  /** Epoch ms (Date.now(), the same clock as the parent's). */
  t: number;
  vram_bytes?: number;
  /** Unload reason: expired | evicted | reload. */
  reason?: string;
}

export type HostCommand = { type: 'start'; nodes: Array<{ name: string; config: GpuSimConfigInput }> } | { type: 'stop' };
export type HostMessage =
  { type: 'ready'; nodes: Array<{ name: string; url: string }> } | { type: 'event'; event: SimEvent } | { type: 'failed'; message: string } | { type: 'stopped' };

const WATCHED: Readonly<Record<string, SimEventKind>> = {
  'loading model': 'load_start',
  'model loaded': 'load_end',
  'model unloaded': 'unload',
};

function send(message: HostMessage): void {
  process.send?.(message);
}

function nodeLogger(node: string): Logger {
  return pino(
    {
      level: 'debug',
      base: { node },
      hooks: {
        logMethod(args, method, level) {
          const [first, second] = args as unknown[];
          if (typeof second === 'string' && first !== null && typeof first === 'object') {
            const kind = WATCHED[second];
            if (kind) {
              const fields = first as { model?: unknown; vram_bytes?: unknown; reason?: unknown };
              send({
                type: 'event',
                event: {
                  node,
                  kind,
                  model: String(fields.model),
                  t: Date.now(),
                  ...(typeof fields.vram_bytes === 'number' && { vram_bytes: fields.vram_bytes }),
                  ...(typeof fields.reason === 'string' && { reason: fields.reason }),
                },
              });
            }
          }
          // Only warnings and errors are worth printing; per-request debug lines are dropped unserialised.
          if (level >= 40) method.apply(this, args);
        },
      },
    },
    pino.destination(2),
  );
}

let sims: GpuSim[] = [];

async function start(nodes: Array<{ name: string; config: GpuSimConfigInput }>): Promise<void> {
  try {
    sims = await Promise.all(nodes.map((node) => createGpuSim(node.config, { logger: nodeLogger(node.name) })));
    send({ type: 'ready', nodes: nodes.map((node, index) => ({ name: node.name, url: (sims[index] as GpuSim).url })) });
  } catch (error) {
    send({ type: 'failed', message: (error as Error).message });
    process.exit(1);
  }
}

async function stop(): Promise<void> {
  await Promise.allSettled(sims.map((sim) => sim.close()));
  send({ type: 'stopped' });
  process.disconnect?.();
  process.exit(0);
}

process.on('message', (message: HostCommand) => {
  if (message.type === 'start') void start(message.nodes);
  else if (message.type === 'stop') void stop();
});
// The parent went away without saying stop: do not linger.
process.on('disconnect', () => process.exit(0));
