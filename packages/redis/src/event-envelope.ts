/**
 * The envelope of a stored and published event: the append script (lua/append-event-2.lua)
 * writes `{"seq":N,` followed by the producer's JSON without its opening brace, and every
 * producer serialises `type` first, so `seq` and `type` sit at a fixed prefix. Defined here,
 * generated into the script (`ts:event-envelope`), read back by `rawEvent`.
 */
const OPEN = '{"seq":';
const TYPE = ',"type":"';

/** `seq` and `type` off the head of a payload. */
export const ENVELOPE_HEADER = new RegExp(`^${escapeRegExp(OPEN)}(\\d+)${escapeRegExp(TYPE)}([a-z_]+)"`);

/** What the append script needs: the head it writes, and the Lua pattern of a queued event's head. */
export function luaEventEnvelope(): Record<string, string> {
  return { open: OPEN, queuedPattern: `^${escapeLuaPattern(OPEN)}%d+${escapeLuaPattern(`${TYPE}queued"`)}` };
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function escapeLuaPattern(text: string): string {
  return text.replace(/[\^$()%.[\]*+\-?]/g, '%$&');
}
