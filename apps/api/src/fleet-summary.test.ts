import { describe, expect, it } from 'vitest';
import type { AgentHeartbeat } from '@switchyard/protocol';
import { agentSummary } from './fleet-summary.js';

const GB = 1e9;
const heartbeat = (over: Partial<AgentHeartbeat> = {}): AgentHeartbeat => ({
  id: 'gpu-a',
  version: '1.0.0',
  state: 'ready',
  backend: { kind: 'ollama', url: 'http://backend' },
  gpus: [
    { index: 0, name: 'L4', vram_total_bytes: 12 * GB, vram_used_bytes: 9 * GB },
    { index: 1, name: 'L4', vram_total_bytes: 12 * GB, vram_used_bytes: 4 * GB },
  ],
  slots: 4,
  in_flight: 2,
  models_loaded: [
    { name: 'qwen', digest: 'd1', vram_bytes: 2 * GB, in_flight: 2, last_used_at: 1, loaded_at: 10, pinned: true },
    { name: 'llama', digest: 'd2', vram_bytes: 5 * GB, in_flight: 0, last_used_at: 1 },
  ],
  models_available: [{ name: 'big', digest: 'd3', size_bytes: 8 * GB, vram_need_bytes: 9 * GB }],
  models_loading: ['big'],
  loads_in_progress: [{ model: 'big', started_at: 1_000, expected_ms: 4_000 }],
  vram: { total_bytes: 24 * GB, used_bytes: 16 * GB, free_bytes: 8 * GB },
  started_at: 0,
  updated_at: 2_000,
  ...over,
});

describe('an agent on the fleet page', () => {
  it('splits its VRAM by resident model and the reservation of the load under way, the rest free; each GPU with its own figures', () => {
    const summary = agentSummary(heartbeat(), 3_000);
    expect(summary.vram).toEqual({
      total_bytes: 24 * GB,
      used_bytes: 16 * GB,
      free_bytes: 8 * GB,
      segments: [
        { kind: 'model', model: 'llama', bytes: 5 * GB },
        { kind: 'model', model: 'qwen', bytes: 2 * GB },
        { kind: 'loading', model: 'big', bytes: 9 * GB },
      ],
    });
    expect(summary.gpus[1]).toEqual({ index: 1, name: 'L4', total_bytes: 12 * GB, used_bytes: 4 * GB, free_bytes: 8 * GB });
    expect(summary.models).toEqual([
      { name: 'llama', state: 'loaded', vram_bytes: 5 * GB, in_flight: 0, pinned: false },
      { name: 'qwen', state: 'loaded', vram_bytes: 2 * GB, in_flight: 2, pinned: true, loaded_at: 10 },
      { name: 'big', state: 'loading', vram_bytes: 9 * GB, in_flight: 0, pinned: false, progress: { started_at: 1_000, expected_ms: 4_000, fraction: 0.5 } },
    ]);
  });

  it('never shows a load as done before the agent says so, and VRAM it cannot put on a model as other', () => {
    const late = agentSummary(heartbeat(), 60_000);
    expect(late.models.find((model) => model.name === 'big')?.progress?.fraction).toBe(0.99);
    const idle = agentSummary(heartbeat({ models_loading: [], loads_in_progress: [], vram: { total_bytes: 24 * GB, used_bytes: 8 * GB, free_bytes: 16 * GB } }), 3_000);
    expect(idle.vram.segments.at(-1)).toEqual({ kind: 'other', bytes: 1 * GB });
    expect(idle.models.map((model) => model.state)).toEqual(['loaded', 'loaded']);
  });
});
