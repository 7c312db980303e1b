/**
 * Parent side of the simulated fleet: forks sim-host, keeps the load/unload timeline it
 * reports, reads /sim/stats and stops it. A fresh fleet per policy, so no policy inherits
 * another's warm models.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { SimStats } from '@switchyard/gpu-sim';
import { request } from 'undici';
import type { CatalogModel } from './catalog.js';
import { simConfig, type NodeSpec, type SimSettings } from './fleet-config.js';
import type { HostCommand, HostMessage, SimEvent } from './sim-host.js';

export interface FleetNode extends NodeSpec {
  url: string;
}

export interface SimFleet {
  readonly nodes: readonly FleetNode[];
  /** Every load/unload so far, in arrival order. */
  readonly events: readonly SimEvent[];
  stats(): Promise<Array<{ node: string; stats: SimStats }>>;
  stop(): Promise<void>;
}

const HOST_SCRIPT = fileURLToPath(new URL('./sim-host.js', import.meta.url));

export async function startSimFleet(nodes: readonly NodeSpec[], settings: SimSettings, models: readonly CatalogModel[]): Promise<SimFleet> {
  const child: ChildProcess = fork(HOST_SCRIPT, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const events: SimEvent[] = [];
  let stopped: (() => void) | undefined;
  const ready = new Promise<Array<{ name: string; url: string }>>((resolve, reject) => {
    child.on('message', (message: HostMessage) => {
      if (message.type === 'event') events.push(message.event);
      else if (message.type === 'ready') resolve(message.nodes);
      else if (message.type === 'failed') reject(new Error(`gpu-sim fleet failed to start: ${message.message}`));
      else if (message.type === 'stopped') stopped?.();
    });
    child.once('exit', (code) => reject(new Error(`gpu-sim host exited with code ${code} before it was ready`)));
  });
  const command = (message: HostCommand) => child.send(message);
  command({ type: 'start', nodes: nodes.map((node) => ({ name: node.name, config: simConfig(node, settings, models) })) });
  const started = await ready;
  const fleetNodes = nodes.map((node, index) => ({ ...node, url: (started[index] as { url: string }).url }));

  return {
    nodes: fleetNodes,
    events,
    stats: () =>
      Promise.all(
        fleetNodes.map(async (node) => {
          const response = await request(`${node.url}/sim/stats`);
          return { node: node.name, stats: (await response.body.json()) as SimStats };
        }),
      ),
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      const said = new Promise<void>((resolve) => (stopped = resolve));
      command({ type: 'stop' });
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await Promise.race([exited, said.then(() => exited)]);
      clearTimeout(timer);
    },
  };
}
