import { Gauge, type Registry } from 'prom-client';
import { AgentState, fleetDigests, rolloutStatus } from '@switchyard/protocol';
import type { ModelCatalogStore } from '@switchyard/redis';
import type { FleetView } from './fleet-view.js';

/**
 * Fleet-wide gauges, read from the agents' heartbeats at scrape time. Each API replica can
 * serve them (every replica reads the same heartbeats); scrape one replica for them, as
 * prom-client's docs advise for gauges that describe shared state. Agent ids are labels:
 * a fleet has tens to hundreds of nodes, not millions.
 */
export function registerFleetMetrics(registry: Registry, fleet: FleetView, catalog?: Pick<ModelCatalogStore, 'list'>): void {
  new Gauge({
    name: 'switchyard_model_digests',
    help: 'Builds (digests) of each model on the disks of live agents: above 1 is drift (outside a rollout); the catalog reconciler fixes it where an entry names a digest',
    labelNames: ['model'],
    registers: [registry],
    async collect() {
      this.reset();
      const agents = await fleet.agents();
      const models = new Set(agents.flatMap((agent) => agent.models_available.map((model) => model.name)));
      for (const model of models) this.set({ model }, fleetDigests(model, agents).size);
    },
  });
  if (catalog) {
    new Gauge({
      name: 'switchyard_model_pulls',
      help: 'Model downloads the catalog reconciler is running, queued or retrying, per model and state (queued, pulling, verifying, failed)',
      labelNames: ['model', 'state'],
      registers: [registry],
      async collect() {
        this.reset();
        for (const agent of await fleet.agents()) for (const pull of agent.pulls ?? []) this.inc({ model: pull.model, state: pull.state });
      },
    });
    new Gauge({
      name: 'switchyard_model_rollout',
      help: 'Rollouts under way: 1 per model in its state (pulling, canary, promoting, aborted: rolling back); a finished rollout is not listed. Two digests of a model during one are not drift',
      labelNames: ['model', 'state'],
      registers: [registry],
      async collect() {
        this.reset();
        const [entries, agents] = await Promise.all([catalog.list(), fleet.agents()]);
        for (const entry of entries) {
          if (!entry.rollout || entry.rollout.finished_at !== undefined) continue;
          const status = rolloutStatus(entry, agents);
          if (status && status.state !== 'done') this.set({ model: entry.name, state: status.state }, 1);
        }
      },
    });
  }
  new Gauge({
    name: 'switchyard_fleet_agents',
    help: 'Live agents (heartbeat not expired) per state: ready, draining, degraded (backend not answering)',
    labelNames: ['state'],
    registers: [registry],
    async collect() {
      this.reset();
      // Every state has a series, 0 included, so an alert on degraded agents resolves to a value, not to nothing.
      for (const state of AgentState.options) this.set({ state }, 0);
      for (const agent of await fleet.agents()) this.inc({ state: agent.state });
    },
  });
  new Gauge({
    name: 'switchyard_fleet_vram_bytes',
    help: 'VRAM per agent as it accounts it: total, used (loaded and loading models), free',
    labelNames: ['agent', 'kind'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const agent of await fleet.agents()) {
        if (!agent.vram) continue;
        this.set({ agent: agent.id, kind: 'total' }, agent.vram.total_bytes);
        this.set({ agent: agent.id, kind: 'used' }, agent.vram.used_bytes);
        this.set({ agent: agent.id, kind: 'free' }, agent.vram.free_bytes);
      }
    },
  });
  new Gauge({
    name: 'switchyard_fleet_model_copies',
    help: 'Warm copies of each model across live agents',
    labelNames: ['model'],
    registers: [registry],
    async collect() {
      this.reset();
      const copies = new Map<string, number>();
      for (const agent of await fleet.agents()) {
        for (const model of agent.models_loaded) copies.set(model.name, (copies.get(model.name) ?? 0) + 1);
      }
      for (const [model, count] of copies) this.set({ model }, count);
    },
  });
  new Gauge({
    name: 'switchyard_vram_estimate_error_ratio',
    help: '(estimated − measured) / measured VRAM need per model, once it was loaded somewhere; positive = the estimate is conservative',
    labelNames: ['model'],
    registers: [registry],
    async collect() {
      this.reset();
      const seen = new Set<string>();
      for (const agent of await fleet.agents()) {
        for (const model of agent.models_available) {
          if (seen.has(model.name) || model.vram_need_source !== 'measured') continue;
          if (!model.vram_estimate_bytes || !model.vram_need_bytes) continue;
          seen.add(model.name);
          this.set({ model: model.name }, (model.vram_estimate_bytes - model.vram_need_bytes) / model.vram_need_bytes);
        }
      }
    },
  });
}
