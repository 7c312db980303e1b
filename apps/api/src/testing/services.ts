import type { RedisConnection } from '@switchyard/redis';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { redisKeys, type AgentHeartbeat } from '@switchyard/protocol';
import { AdmissionLedger, EventLog, FleetRegistry, JobLifecycle, JobRecords, QueueRegistry } from '@switchyard/redis';
import { Admission } from '../admission.js';
import { ApiKeyStore } from '../auth.js';
import type { ApiConfig } from '../config.js';
import { FleetView } from '../fleet-view.js';
import { JobService } from '../job-service.js';
import { createApiMetrics } from '../metrics.js';

// Fixtures for the service-level tests beside the API's classes; only tests import them.

/** One ready agent that lists `model`: what admission needs to place a job. */
export function readyAgent(id: string, model: string): AgentHeartbeat {
  return {
    id,
    version: 'test',
    state: 'ready',
    backend: { kind: 'ollama', url: 'http://127.0.0.1:1' },
    gpus: [{ index: 0, name: 'gpu', vram_total_bytes: 24e9, vram_used_bytes: 0 }],
    slots: 2,
    in_flight: 0,
    models_loaded: [],
    models_available: [{ name: model, digest: 'sha256:0123456789abcdef', size_bytes: 1e9, fits: true }],
    vram: { total_bytes: 24e9, used_bytes: 0, free_bytes: 24e9 },
    started_at: Date.now(),
    updated_at: Date.now(),
  };
}

/**
 * The services of one API process under `prefix`, wired as createApi wires them, with one
 * ready agent serving `model` in the fleet. The caller closes `queues`.
 */
export async function apiServices(redis: RedisConnection, prefix: string, config: ApiConfig, model: string) {
  const logger = pino({ level: 'silent' });
  const keys = redisKeys(prefix);
  const queues = new QueueRegistry(redis, keys);
  const events = new EventLog(redis, keys);
  const ledger = new AdmissionLedger(redis, keys);
  const fleet = new FleetView(new FleetRegistry(redis, keys), config.fleetCacheMs);
  await new FleetRegistry(redis, keys).publish(readyAgent('agent-1', model), 60_000);
  const metrics = createApiMetrics(new Registry());
  const admission = new Admission({ redis, ledger, fleet, keyStore: ApiKeyStore.fromConfig({}), config, metrics, logger });
  const lifecycle = new JobLifecycle(redis, keys, ledger, { recordTtlSeconds: config.jobRetentionSeconds });
  const records = new JobRecords(redis, keys);
  // Capabilities read at every submission: tests change a model's shared info between two.
  const jobs = new JobService({ redis, keys, queues, lifecycle, records, admission, ledger, metrics, logger, capabilitiesMaxAgeMs: 0 });
  return { keys, config, queues, events, ledger, fleet, metrics, admission, lifecycle, records, jobs, logger };
}
