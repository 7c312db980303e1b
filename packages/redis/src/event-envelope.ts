/**
 * The envelope of a published and replayed event: `{"seq":N,` followed by the producer's
 * JSON without its opening brace. Every producer serialises `type` first, so `seq` and
 * `type` sit at a fixed prefix. The stream stores the producer's JSON as given (its entry id
 * `0-<seq>` carries the seq); the append include (lua/includes/job-append.lua) builds the
 * published payload with the head generated from here (`ts:event-envelope`), and
 * `EventLog` builds the replayed one with `envelope`.
 */
const OPEN = '{"seq":';
const TYPE = ',"type":"';

/** `seq` and `type` off the head of a payload. */
export const ENVELOPE_HEADER = new RegExp(`^${escapeRegExp(OPEN)}(\\d+)${escapeRegExp(TYPE)}([a-z_]+)"`);

/** The payload of the event stored as `body` with this seq. */
export function envelope(seq: number, body: string): string {
  return `${OPEN}${seq},${body.slice(1)}`;
}

/** What the append include needs: the head it writes. */
export function luaEventEnvelope(): Record<string, string> {
  return { open: OPEN };
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
