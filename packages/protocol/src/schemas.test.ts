import { describe, expect, it } from 'vitest';
import { AgentHeartbeat, JobRequest, StreamEvent, StreamEventBody, isTerminalEvent } from './index.js';

describe('JobRequest', () => {
  it('accepts a chat request and defaults the priority', () => {
    const parsed = JobRequest.parse({ model: 'llama3.1:8b', messages: [{ role: 'user', content: 'hi' }] });
    expect(parsed.priority).toBe('interactive');
  });

  it('accepts a generate request with options, including unknown numeric options', () => {
    const parsed = JobRequest.parse({ model: 'm:1', prompt: 'hi', options: { seed: 3, num_gpu: 99 } });
    expect(parsed.options).toEqual({ seed: 3, num_gpu: 99 });
  });

  it.each([
    [{ messages: [{ role: 'user', content: 'x' }] }, 'model'],
    [{ model: 'm', messages: [] }, 'messages'],
    [{ model: 'm' }, 'messages'],
    [{ model: 'm', prompt: 'a', messages: [{ role: 'user', content: 'x' }] }, 'messages'],
    [{ model: 'm', prompt: 42 }, 'prompt'],
    [{ model: 'bad model name!', prompt: 'x' }, 'model'],
    [{ model: 'm', prompt: 'x', promt: 'typo' }, ''],
    [{ model: 'm', prompt: 'x', options: { temperature: 'hot' } }, 'options.temperature'],
    [{ model: 'm', prompt: 'x', priority: 'urgent' }, 'priority'],
    [{ model: 'm', messages: [{ role: 'robot', content: 'x' }] }, 'messages.0.role'],
  ])('rejects %j naming %s', (body, path) => {
    const result = JobRequest.safeParse(body);
    expect(result.success).toBe(false);
    const paths = result.error!.issues.map((issue) => issue.path.join('.'));
    expect(paths).toContain(path);
  });
});

describe('StreamEvent', () => {
  it('parses each event type with its seq', () => {
    const events = [
      { seq: 1, type: 'queued', position: 0, depth: 1 },
      { seq: 2, type: 'started', agent: 'a', cold: true, load_ms: 12 },
      { seq: 3, type: 'token', text: 'hi' },
      { seq: 4, type: 'restarted', reason: 'agent_lost', attempt: 2 },
      {
        seq: 5,
        type: 'done',
        finish_reason: 'stop',
        usage: { prompt_tokens: 1, completion_tokens: 2 },
        timings: { queued_ms: 1, load_ms: 0, ttft_ms: 3, total_ms: 4 },
      },
      { seq: 6, type: 'error', code: 'cancelled', message: 'cancelled by client' },
    ];
    for (const event of events) expect(StreamEvent.parse(event)).toEqual(event);
    expect(events.filter(isTerminalEvent).map((e) => e.type)).toEqual(['done', 'error']);
  });

  it('rejects an event without seq or with an unknown type', () => {
    expect(StreamEvent.safeParse({ type: 'token', text: 'x' }).success).toBe(false);
    expect(StreamEventBody.safeParse({ type: 'tokens', text: 'x' }).success).toBe(false);
  });
});

describe('AgentHeartbeat', () => {
  it('round-trips through JSON', () => {
    const heartbeat = {
      id: 'agent-1',
      version: '0.1.0',
      state: 'ready',
      backend: { kind: 'ollama', url: 'http://127.0.0.1:11434' },
      gpus: [{ index: 0, name: 'sim', vram_total_bytes: 24e9, vram_used_bytes: 1e9 }],
      slots: 4,
      in_flight: 0,
      models_loaded: [],
      models_available: [{ name: 'm:1', digest: 'sha256:00', size_bytes: 1 }],
      started_at: 1,
      updated_at: 2,
    };
    expect(AgentHeartbeat.parse(JSON.parse(JSON.stringify(heartbeat)))).toEqual(heartbeat);
  });

  it('carries GPU utilisation, temperature and power when nvidia-smi has them, and rejects a NaN', () => {
    const gpu = {
      index: 0,
      name: 'NVIDIA L40S',
      vram_total_bytes: 48e9,
      vram_used_bytes: 1e9,
      utilization_percent: 87,
      temperature_c: 64,
      power_w: 301.5,
      power_limit_w: 350,
    };
    const base = {
      id: 'a',
      version: '0.1.0',
      state: 'ready',
      backend: { kind: 'ollama', url: 'http://x' },
      slots: 1,
      in_flight: 0,
      models_loaded: [],
      models_available: [],
      started_at: 1,
      updated_at: 2,
    };
    expect(AgentHeartbeat.parse(JSON.parse(JSON.stringify({ ...base, gpus: [gpu] }))).gpus[0]).toEqual(gpu);
    // JSON turns NaN into null: either is refused rather than read as a figure.
    expect(AgentHeartbeat.safeParse({ ...base, gpus: [{ ...gpu, power_w: Number.NaN }] }).success).toBe(false);
    expect(AgentHeartbeat.safeParse({ ...base, gpus: [{ ...gpu, power_w: null }] }).success).toBe(false);
    expect(AgentHeartbeat.safeParse({ ...base, gpus: [{ ...gpu, utilization_percent: 140 }] }).success).toBe(false);
  });
});
