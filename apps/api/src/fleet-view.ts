import { CachedRead, type FleetRegistry } from '@switchyard/redis';
import { splitQueueModel, type AgentHeartbeat } from '@switchyard/protocol';

export interface ServableModel {
  agents: string[];
  loadedOn: string[];
  loadingOn: string[];
  size_bytes: number;
  digests: string[];
}

/**
 * The live fleet as the API sees it, read from agent heartbeats and reused for a short
 * time: admission runs on every submit and must not read every heartbeat each time.
 * Concurrent callers share one read.
 */
export class FleetView {
  private readonly live: CachedRead<AgentHeartbeat[]>;

  constructor(registry: FleetRegistry, maxAgeMs: number) {
    this.live = new CachedRead(() => registry.live(), maxAgeMs);
  }

  agents(): Promise<AgentHeartbeat[]> {
    return this.live.get();
  }

  /** Models any live agent can serve, with the agents that have each, hold it loaded, or are loading it. */
  async servableModels(): Promise<Map<string, ServableModel>> {
    const models = new Map<string, ServableModel>();
    for (const agent of await this.agents()) {
      if (agent.state !== 'ready') continue;
      for (const model of agent.models_available) {
        const entry = models.get(model.name) ?? { agents: [], loadedOn: [], loadingOn: [], size_bytes: model.size_bytes, digests: [] };
        entry.agents.push(agent.id);
        if (!entry.digests.includes(model.digest)) entry.digests.push(model.digest);
        models.set(model.name, entry);
      }
      for (const model of agent.models_loaded) models.get(model.name)?.loadedOn.push(agent.id);
      for (const name of agent.models_loading ?? []) models.get(name)?.loadingOn.push(agent.id);
    }
    return models;
  }
}

/**
 * Queue keys grouped by the model they serve. A digest-pinned queue (`model@digest`, see
 * protocol `pinnedQueueModel`) is where jobs pinned to one build of a model wait; it is
 * part of that model, never a model of its own, so every view of the fleet (the model
 * list, the CLI, metrics) files it under its model.
 */
export function queuesByModel(queueKeys: Iterable<string>): Map<string, Array<{ queueKey: string; digest?: string }>> {
  const byModel = new Map<string, Array<{ queueKey: string; digest?: string }>>();
  for (const queueKey of queueKeys) {
    const { model, digest } = splitQueueModel(queueKey);
    const queues = byModel.get(model) ?? [];
    queues.push(digest === undefined ? { queueKey } : { queueKey, digest });
    byModel.set(model, queues);
  }
  return byModel;
}
