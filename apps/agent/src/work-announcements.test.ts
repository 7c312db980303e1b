import { describe, expect, it } from 'vitest';
import { WorkAnnouncements } from './work-announcements.js';

/** A WorkAnnouncements on a clock the test moves. */
function withClock(fullReadMs: number) {
  let now = 1_000;
  const announcements = new WorkAnnouncements(fullReadMs, () => now);
  return { announcements, advance: (ms: number) => (now += ms) };
}

const known = () => true;
const none = () => 0;

describe('which cold models a placement round reads', () => {
  it('reads every model first, then only announced ones, and every model again once per full-read period', () => {
    const { announcements, advance } = withClock(2_000);
    const models = ['a', 'b', 'c'];
    const first = announcements.plan(models);
    expect(first).toMatchObject({ full: true, models });
    announcements.settle(first, none, known);
    advance(100);
    expect(announcements.plan(models).models).toEqual([]);
    announcements.announce('b');
    advance(100);
    const second = announcements.plan(models);
    expect(second).toMatchObject({ full: false, models: ['b'] });
    announcements.settle(second, none, known);
    // Read empty: forgotten.
    expect(announcements.plan(models).models).toEqual([]);
    advance(2_000);
    expect(announcements.plan(models)).toMatchObject({ full: true, models });
  });

  it('keeps reading a model while work waits for it', () => {
    const { announcements, advance } = withClock(60_000);
    announcements.settle(announcements.plan(['a']), none, known);
    announcements.announce('a');
    advance(10);
    const plan = announcements.plan(['a', 'b']);
    announcements.settle(plan, (model) => (model === 'a' ? 3 : 0), known);
    advance(10);
    expect(announcements.plan(['a', 'b']).models).toEqual(['a']);
  });

  it('does not forget a model announced while its empty read was under way', () => {
    const { announcements, advance } = withClock(60_000);
    announcements.settle(announcements.plan(['a']), none, known);
    announcements.announce('a');
    advance(10);
    const plan = announcements.plan(['a']);
    // The read began before this job was enqueued and found nothing.
    advance(5);
    announcements.announce('a');
    announcements.settle(plan, none, known);
    expect(announcements.plan(['a']).models).toEqual(['a']);
  });

  it('leaves the full read due when a read fails (never settled)', () => {
    const { announcements, advance } = withClock(1_000);
    announcements.settle(announcements.plan(['a']), none, known);
    advance(1_000);
    expect(announcements.plan(['a']).full).toBe(true);
    // That read threw; the next round must still read everything.
    advance(10);
    expect(announcements.plan(['a']).full).toBe(true);
  });

  it('drops marks of models the backend no longer offers at a full read', () => {
    const { announcements, advance } = withClock(1_000);
    announcements.announce('gone');
    const plan = announcements.plan(['a']);
    announcements.settle(plan, none, (model) => model !== 'gone');
    advance(10);
    expect(announcements.plan(['a', 'gone']).models).toEqual([]);
  });
});
