import type { AgentHeartbeat, SwitchyardClient } from '@switchyard/sdk';
import { EXIT } from '../exit-codes.js';
import { ago, bar, formatBytes, table } from '../format.js';
import type { CliIo } from '../io.js';

/**
 * `switchyard ps`: the fleet like `ollama ps`, one block per agent — its slots and backend,
 * each GPU with VRAM used/total as a bar, and the models loaded there with their in-flight
 * requests.
 */
export async function psCommand(io: CliIo, client: SwitchyardClient, args: { json: boolean }): Promise<number> {
  const agents = await client.agents();
  if (args.json) {
    io.stdout.write(`${JSON.stringify({ agents }, null, 2)}\n`);
    return EXIT.ok;
  }
  if (agents.length === 0) {
    io.stdout.write('no live agents\n');
    return EXIT.ok;
  }
  io.stdout.write(`${agents.map(renderAgent).join('\n\n')}\n`);
  return EXIT.ok;
}

export function renderAgent(agent: AgentHeartbeat): string {
  const lines: string[] = [];
  lines.push(
    table([
      ['AGENT', 'STATE', 'IN-FLIGHT', 'BACKEND'],
      [agent.id, agent.state, `${agent.in_flight}/${agent.slots}`, `${agent.backend.kind} ${agent.backend.url}`],
    ]),
  );
  const gpuRows = agent.gpus.map((gpu) => [
    `GPU ${gpu.index}`,
    gpu.name,
    bar(gpu.vram_used_bytes, gpu.vram_total_bytes),
    `${formatBytes(gpu.vram_used_bytes)} / ${formatBytes(gpu.vram_total_bytes)}`,
  ]);
  if (gpuRows.length > 0) lines.push(table(gpuRows, '  '));
  const loading = (agent as { models_loading?: string[] }).models_loading ?? [];
  if (loading.length > 0) lines.push(`  loading now: ${loading.join(', ')}`);
  if (agent.models_loaded.length === 0) {
    lines.push('  no models loaded');
  } else {
    lines.push(
      table(
        [
          ['LOADED', 'VRAM', 'IN-FLIGHT', 'LAST USED'],
          ...agent.models_loaded
            .slice()
            .sort((a, b) => a.name.localeCompare(b.name))
            .map((model) => [model.name, formatBytes(model.vram_bytes), String(model.in_flight), ago(model.last_used_at)]),
        ],
        '  ',
      ),
    );
  }
  return lines.join('\n');
}
