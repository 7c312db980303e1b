import { describe, expect, it } from 'vitest';
import type { StreamEvent } from '@switchyard/protocol';
import { finalLine, finalMetrics, toolCallLine } from './wire.js';

const done: Extract<StreamEvent, { type: 'done' }> = {
  seq: 9,
  type: 'done',
  finish_reason: 'length',
  usage: { prompt_tokens: 26, completion_tokens: 40 },
  timings: { queued_ms: 100, load_ms: 1_200, ttft_ms: 1_450, total_ms: 1_850.5 },
};

describe('Ollama final line', () => {
  it('derives the duration fields in nanoseconds from the done event', () => {
    expect(finalMetrics(done)).toEqual({
      done_reason: 'length',
      total_duration: 1_850_500_000,
      load_duration: 1_200_000_000,
      prompt_eval_count: 26,
      prompt_eval_duration: 150_000_000,
      eval_count: 40,
      eval_duration: 400_500_000,
    });
  });

  it('never reports a negative duration', () => {
    const odd = { ...done, timings: { queued_ms: 50, load_ms: 20, ttft_ms: 30, total_ms: 25 } };
    expect(finalMetrics(odd).prompt_eval_duration).toBe(0);
    expect(finalMetrics(odd).eval_duration).toBe(0);
  });

  it('carries the message (chat) or response (generate)', () => {
    expect(finalLine('chat', 'm:1', 'hello', done)).toMatchObject({ model: 'm:1', message: { role: 'assistant', content: 'hello' }, done: true });
    expect(finalLine('generate', 'm:1', 'hello', done)).toMatchObject({ response: 'hello', done: true, done_reason: 'length' });
  });

  it('carries calls with object arguments: on the one object of a non-streamed chat, on a line of their own when streamed', () => {
    const call = { id: 'call_J_0', name: 'get_weather', arguments: { city: 'Paris' } };
    const whole = finalLine('chat', 'm:1', '', done, [call]);
    expect(whole).toMatchObject({
      done: true,
      done_reason: 'length',
      message: { role: 'assistant', content: '', tool_calls: [{ function: { index: 0, name: 'get_weather', arguments: { city: 'Paris' } } }] },
    });
    expect(finalLine('generate', 'm:1', '', done, [call])).not.toHaveProperty('message');
    expect(toolCallLine('m:1', call, 2)).toMatchObject({
      done: false,
      message: { content: '', tool_calls: [{ id: 'call_J_0', function: { index: 2, name: 'get_weather', arguments: { city: 'Paris' } } }] },
    });
  });
});
