import { ModelInfoRecord, type AgentHeartbeat } from '@switchyard/protocol';
import type { ApiContext } from '../context.js';
import { readModelInfos } from '../model-infos.js';

/** `show.modified_at` of a model info record, in epoch ms, when it is a valid date. */
export function modifiedAtMs(info: ModelInfoRecord | undefined): number | undefined {
  const value = info?.show['modified_at'];
  if (typeof value !== 'string') return undefined;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? undefined : ms;
}

/**
 * When each model appeared, for OpenAI's `created` and Ollama's `modified_at`: the backend's
 * `modified_at` when an agent shared it, else when the earliest live agent that has the model
 * started, else 0.
 */
export async function modelCreatedAt(ctx: Pick<ApiContext, 'redis' | 'keys' | 'fleet'>, names: readonly string[]): Promise<Map<string, number>> {
  const [infos, agents] = await Promise.all([readModelInfos(ctx, names).catch(() => new Map<string, ModelInfoRecord>()), ctx.fleet.agents()]);
  const created = new Map<string, number>();
  for (const name of names) {
    created.set(name, modifiedAtMs(infos.get(name)) ?? earliestAgentStart(agents, name) ?? 0);
  }
  return created;
}

function earliestAgentStart(agents: readonly AgentHeartbeat[], name: string): number | undefined {
  let earliest: number | undefined;
  for (const agent of agents) {
    if (!agent.models_available.some((model) => model.name === name)) continue;
    if (earliest === undefined || agent.started_at < earliest) earliest = agent.started_at;
  }
  return earliest;
}
