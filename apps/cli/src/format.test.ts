import { describe, expect, it } from 'vitest';
import { bar, formatBytes, formatDuration, table } from './format.js';
import { queueRow } from './commands/queues.js';

describe('terminal formatting', () => {
  it('draws VRAM bars of a fixed width', () => {
    expect(bar(0, 24)).toBe(`[${'░'.repeat(20)}]`);
    expect(bar(6, 24)).toBe(`[${'█'.repeat(5)}${'░'.repeat(15)}]`);
    expect(bar(30, 24)).toBe(`[${'█'.repeat(20)}]`);
    expect(bar(1, 0)).toBe(`[${'░'.repeat(20)}]`);
  });

  it('formats sizes and durations', () => {
    expect(formatBytes(24 * 2 ** 30)).toBe('24.0 GiB');
    expect(formatBytes(512 * 2 ** 20)).toBe('512 MiB');
    expect(formatDuration(0.25)).toBe('250ms');
    expect(formatDuration(4.26)).toBe('4.3s');
    expect(formatDuration(185)).toBe('3m05s');
    expect(formatDuration(7_440)).toBe('2h04m');
  });

  it('aligns table columns', () => {
    expect(
      table([
        ['A', 'BB', 'C'],
        ['long', 'x', 'y'],
      ]),
    ).toBe('A      BB   C\nlong   x    y');
  });

  it('reads queue statistics, n/a when the API has none', () => {
    expect(queueRow({ id: 'm:1', queue: { waiting: 2, active: 1 } })).toMatchObject({ waiting: 2, oldest_wait_s: null, drain_rate_per_s: null });
    expect(queueRow({ id: 'm:1', queue: { waiting: 0, active: 0, oldest_wait_s: 3.5, drain_rate_per_s: 0.25 } })).toMatchObject({
      oldest_wait_s: 3.5,
      drain_rate_per_s: 0.25,
    });
  });
});
