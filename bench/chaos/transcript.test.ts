import { describe, expect, it } from 'vitest';
import { compareText, Transcript } from './transcript.js';

describe('Transcript', () => {
  it('takes 1, 2, 3… and shows the tokens', () => {
    const t = new Transcript(0);
    t.add(1, 'queued', { position: 0, depth: 1 }, 10);
    t.add(2, 'started', {}, 20);
    t.add(3, 'token', { text: 'a ' }, 30);
    t.add(4, 'token', { text: 'b' }, 70);
    t.add(5, 'done', {}, 80);
    expect({ gaps: t.gaps, dups: t.dups, text: t.text, terminal: t.terminal?.type, silence: t.maxSilenceMs }).toEqual({
      gaps: 0,
      dups: 0,
      text: 'a b',
      terminal: 'done',
      silence: 40,
    });
  });

  it('counts a repeat (ignored) and a gap (taken)', () => {
    const t = new Transcript(0);
    t.add(1, 'queued', {}, 1);
    t.add(2, 'token', { text: 'x' }, 2);
    t.add(2, 'token', { text: 'x' }, 3);
    t.add(5, 'token', { text: 'y' }, 4);
    expect({ gaps: t.gaps, missing: t.missing, dups: t.dups, text: t.text }).toEqual({ gaps: 1, missing: 2, dups: 1, text: 'xy' });
  });

  it('voids the text before `restarted`, continues after `resumed`', () => {
    const t = new Transcript(0);
    t.add(1, 'token', { text: 'one ' }, 1);
    t.add(2, 'restarted', { reason: 'agent_lost', attempt: 2 }, 2);
    t.add(3, 'token', { text: 'two ' }, 3);
    t.add(4, 'resumed', { attempt: 3, after_seq: 3 }, 4);
    t.add(5, 'token', { text: 'three' }, 5);
    t.add(6, 'error', { code: 'backend_error', message: 'gone' }, 6);
    t.add(7, 'token', { text: 'late' }, 7);
    expect({ text: t.text, voided: t.voidedChars, restarts: t.restartedAt, resumed: t.resumedAt, end: t.terminal, after: t.afterTerminal }).toEqual({
      text: 'two three',
      voided: 4,
      restarts: [2],
      resumed: [4],
      end: { type: 'error', at: 6, code: 'backend_error', message: 'gone' },
      after: 1,
    });
    expect(t.shape()).toBe('token restarted token resumed token error token');
  });
});

describe('compareText', () => {
  const answer = 'The model runs quickly and the queue waits. A token is a value.';
  it('tells equal, duplicated, truncated and different apart', () => {
    expect(compareText(answer, answer)).toBe('equal');
    expect(compareText('The model runs ' + answer, answer)).toBe('duplicated');
    expect(compareText(answer.slice(0, 20), answer)).toBe('truncated');
    expect(compareText('something else entirely', answer)).toBe('different');
  });
});
