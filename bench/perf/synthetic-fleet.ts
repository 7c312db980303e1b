import { redisKeys, type AgentHeartbeat } from '@switchyard/protocol';
import { FleetRegistry, type RedisConnection } from '@switchyard/redis';

/**
 * A heartbeat for an agent that serves `model` but never pulls: admission accepts jobs
 * and they stay queued ("agents paused"), so a benchmark measures the API alone.
 */
export function pausedFleet(redis: RedisConnection, prefix: string, model: string): { stop(): void } {
  const registry = new FleetRegistry(redis, redisKeys(prefix));
  const beat = () => {
    const now = Date.now();
    const heartbeat: AgentHeartbeat = {
      id: 'paused-agent',
      version: 'bench',
      state: 'ready',
      backend: { kind: 'ollama', url: 'http://127.0.0.1:9' },
      gpus: [{ index: 0, name: 'bench', vram_total_bytes: 80e9, vram_used_bytes: 0 }],
      slots: 4,
      in_flight: 0,
      models_loaded: [],
      models_available: [{ name: model, digest: '0'.repeat(64), size_bytes: 4e8, vram_need_bytes: 1e9, fits: true }],
      started_at: now,
      updated_at: now,
    };
    void registry.publish(heartbeat, 10_000).catch(() => undefined);
  };
  beat();
  const timer = setInterval(beat, 2_000);
  return { stop: () => clearInterval(timer) };
}
