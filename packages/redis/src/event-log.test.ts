import { describe, expect, it } from 'vitest';
import { parseEventPayload } from './event-log.js';

describe('parseEventPayload', () => {
  it('reads a token event as the schema would, and every other payload through the schema', () => {
    expect(parseEventPayload('{"seq":3,"type":"token","text":"Hi"}')).toEqual({ seq: 3, type: 'token', text: 'Hi' });
    // Unknown fields are dropped, as the schema drops them.
    expect(parseEventPayload('{"seq":3,"type":"token","text":"Hi","extra":1}')).toEqual({ seq: 3, type: 'token', text: 'Hi' });
    for (const bad of [
      '{"seq":0,"type":"token","text":"Hi"}',
      '{"seq":1.5,"type":"token","text":"Hi"}',
      '{"seq":2,"type":"token","text":7}',
      '{"seq":2,"type":"nope"}',
      'null',
      '[1]',
      'not json',
    ]) {
      expect(parseEventPayload(bad)).toBeUndefined();
    }
    expect(parseEventPayload('{"seq":9,"type":"error","code":"cancelled","message":"by you"}')).toEqual({ seq: 9, type: 'error', code: 'cancelled', message: 'by you' });
    expect(parseEventPayload(undefined)).toBeUndefined();
  });
});
