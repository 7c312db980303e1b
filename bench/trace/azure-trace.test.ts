import { describe, expect, it } from 'vitest';
import { capacityMath, loadTrace, parseTraceCsv, serviceSeconds } from './azure-trace.js';

const HEADER = 'TIMESTAMP,ContextTokens,GeneratedTokens\r\n';

describe('the Azure trace window', () => {
  it('parses the published CSV (CRLF, 7 fractional digits) and refuses anything else', () => {
    const rows = parseTraceCsv(`${HEADER}2023-11-16 18:15:46.6805900,374,44\r\n2023-11-16 18:15:50.9951690,396,109\r\n`);
    expect(rows).toEqual([
      { at_ms: Date.parse('2023-11-16T18:15:46Z') + 681, context_tokens: 374, generated_tokens: 44 },
      { at_ms: Date.parse('2023-11-16T18:15:50Z') + 995, context_tokens: 396, generated_tokens: 109 },
    ]);
    expect(() => parseTraceCsv('a,b,c\n')).toThrow(/header/);
    expect(() => parseTraceCsv(`${HEADER}yesterday,1,2\n`)).toThrow(/line 2/);
  });

  it('merges both services from the first request of either, within the window', () => {
    const files: Record<string, string> = {
      'AzureLLMInferenceTrace_conv_first10min.csv': `${HEADER}2023-11-16 18:00:00.0000000,100,10\r\n2023-11-16 18:00:02.0000000,100,10\r\n2023-11-16 18:00:09.0000000,1,1\r\n`,
      'AzureLLMInferenceTrace_code_first10min.csv': `${HEADER}2023-11-16 18:00:01.5000000,200,5\r\n`,
    };
    const trace = loadTrace(5, (file) => files[file]!);
    expect(trace.map((request) => [request.id, request.service, request.at_s])).toEqual([
      [0, 'conversation', 0],
      [1, 'code', 1.5],
      [2, 'conversation', 2],
    ]);
  });

  it('reads the recorded window: 2,867 conversation and 1,004 code requests in 600 s', () => {
    const trace = loadTrace(600);
    expect(trace.filter((request) => request.service === 'conversation')).toHaveLength(2_867);
    expect(trace.filter((request) => request.service === 'code')).toHaveLength(1_004);
    expect(trace.at(-1)!.at_s).toBeLessThan(600);
  });

  it('counts the slots a service keeps busy: arrivals × service time', () => {
    const speed = { tokens_per_s: 100, prompt_tokens_per_s: 1_000 };
    expect(serviceSeconds({ context_tokens: 500, generated_tokens: 50 }, speed)).toBe(1);
    // 120 requests of 1 s each within the first minute: 2 slots busy, half a node of 4 slots.
    const requests = Array.from({ length: 120 }, (_, id) => ({ id, service: 'conversation' as const, at_s: id / 2, context_tokens: 500, generated_tokens: 50 }));
    const math = capacityMath(requests, { conversation: speed, code: speed }, 4, 60);
    expect(math.conversation.busiest_minute).toMatchObject({ start_s: 0, requests: 120, busy_slots: 2, nodes: 0.5 });
    expect(math.conversation.busiest_2s.requests).toBe(5);
    expect(math.code.requests).toBe(0);
  });
});
