import { describe, expect, it } from 'vitest';
import { canonicalModelName, modelToQueueName, pinnedQueueModel, queueNameToModel, splitQueueModel } from './model-name.js';

const awkward = [
  'llama3.1:8b-instruct-q4_K_M',
  'library/qwen2.5:0.5b',
  'hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M',
  'a',
  'model~with~tildes:v1',
  'x{y}z:1',
  'émoji-✓:latest',
  'registry.ollama.ai/library/llama3:latest',
  '___:---',
];

describe('queue-name codec', () => {
  it.each(awkward)('round-trips %s', (name) => {
    const queue = modelToQueueName(name);
    expect(queueNameToModel(queue)).toBe(name);
  });

  it.each(awkward)('produces a BullMQ-legal name with one hash tag for %s', (name) => {
    const queue = modelToQueueName(name);
    expect(queue).not.toContain(':');
    expect(queue.startsWith('{') && queue.endsWith('}')).toBe(true);
    expect(queue.slice(1, -1)).toMatch(/^[A-Za-z0-9._~-]+$/);
  });

  it('keeps distinct names distinct', () => {
    const queues = new Set(awkward.map(modelToQueueName));
    expect(queues.size).toBe(awkward.length);
    expect(modelToQueueName('a:b')).not.toBe(modelToQueueName('a/b'));
    expect(modelToQueueName('a~3ab')).not.toBe(modelToQueueName('a:b'));
  });

  it('rejects names it could not have produced', () => {
    expect(() => queueNameToModel('llama')).toThrow(/not a Switchyard queue name/);
    expect(() => queueNameToModel('{a~zz}')).toThrow(/bad escape/);
    expect(() => queueNameToModel('{a:b}')).toThrow(/unexpected character/);
  });
});

describe('canonicalModelName', () => {
  it('makes the tag explicit and drops the default namespace', () => {
    expect(canonicalModelName('llama3')).toBe('llama3:latest');
    expect(canonicalModelName('library/qwen2.5:0.5b')).toBe('qwen2.5:0.5b');
    expect(canonicalModelName('registry.ollama.ai/library/llama3:8b')).toBe('llama3:8b');
    expect(canonicalModelName('hf.co/org/repo')).toBe('hf.co/org/repo:latest');
    expect(canonicalModelName('llama3.1:8b-instruct-q4_K_M')).toBe('llama3.1:8b-instruct-q4_K_M');
  });
});

describe('pinned-digest queues', () => {
  it('names a queue per model and digest, and splits it back', () => {
    const key = pinnedQueueModel('llama3.1:8b', 'sha256:ABCDEF01');
    expect(key).toBe('llama3.1:8b@abcdef01');
    expect(splitQueueModel(key)).toEqual({ model: 'llama3.1:8b', digest: 'abcdef01' });
    expect(splitQueueModel('llama3.1:8b')).toEqual({ model: 'llama3.1:8b' });
    expect(queueNameToModel(modelToQueueName(key))).toBe(key);
  });
});
