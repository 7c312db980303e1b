import { describe, expect, it } from 'vitest';
import type { StreamEvent } from '@switchyard/protocol';
import { collectAnswer } from './collect-answer.js';
import { CompatError } from './compat-error.js';

async function* events(...list: StreamEvent[]): AsyncGenerator<StreamEvent> {
  yield* list;
}

const done: StreamEvent = {
  seq: 6,
  type: 'done',
  finish_reason: 'stop',
  usage: { prompt_tokens: 1, completion_tokens: 2 },
  timings: { queued_ms: 0, load_ms: 0, ttft_ms: 1, total_ms: 2 },
};

describe('collectAnswer (non-streaming answers)', () => {
  it('voids the text before a restart, invisibly to the client', async () => {
    const answer = await collectAnswer(
      events(
        { seq: 1, type: 'queued', position: 0, depth: 1 },
        { seq: 2, type: 'token', text: 'lost ' },
        { seq: 3, type: 'restarted', reason: 'agent_lost', attempt: 2 },
        { seq: 4, type: 'started', agent: 'b', cold: false, load_ms: 0 },
        { seq: 5, type: 'token', text: 'kept' },
        done,
      ),
    );
    expect(answer).toMatchObject({ text: 'kept', agent: 'b', done: { finish_reason: 'stop' } });
  });

  it('collects the calls of the last attempt and the embeddings of the done event', async () => {
    const call = (index: number, name: string) => ({ type: 'tool_call' as const, index, id: `call_J_${index}`, name, arguments: { n: index } });
    const answer = await collectAnswer(
      events(
        { seq: 1, ...call(0, 'void') },
        { seq: 2, type: 'restarted', reason: 'agent_lost', attempt: 2 },
        { seq: 3, ...call(0, 'first') },
        { seq: 4, ...call(1, 'second') },
        { ...done, finish_reason: 'tool_calls' },
      ),
    );
    expect(answer?.toolCalls).toEqual([
      { id: 'call_J_0', name: 'first', arguments: { n: 0 } },
      { id: 'call_J_1', name: 'second', arguments: { n: 1 } },
    ]);
    const embedded = await collectAnswer(events({ ...done, embeddings: [[1, 2]] }));
    expect(embedded).toMatchObject({ text: '', toolCalls: [], embeddings: [[1, 2]] });
  });

  it('turns a job failure into an HTTP error that says whether a retry can help', async () => {
    const failure = (code: string) => collectAnswer(events({ seq: 1, type: 'error', code, message: 'x' })).catch((error: unknown) => error as CompatError);
    expect(await failure('cancelled')).toMatchObject({ status: 409, options: { retryable: false } });
    expect(await failure('deadline_exceeded')).toMatchObject({ status: 504, options: { retryable: false } });
    expect(await failure('backend_error')).toMatchObject({ status: 502 });
    expect(await failure('model_unsupported')).toMatchObject({ status: 400, code: 'model_unsupported', options: { retryable: false } });
  });

  it('resolves undefined when the events stop without an end (client gone)', async () => {
    expect(await collectAnswer(events({ seq: 1, type: 'token', text: 'x' }))).toBeUndefined();
  });
});
