import { Agent, fetch as undiciFetch } from 'undici';

/**
 * A fetch with its own connection pool, for clients that abort streams. After an aborted
 * response undici may open a spare connection that never sends a request, and the API's
 * graceful close waits for it; destroying this pool before closing the stack ends it.
 */
export function dedicatedFetch(): { fetch: typeof fetch; destroy(): Promise<void> } {
  const dispatcher = new Agent();
  const fetchWithPool = ((input: Parameters<typeof fetch>[0], init?: RequestInit) =>
    undiciFetch(input as never, { ...(init as object), dispatcher } as never)) as unknown as typeof fetch;
  return { fetch: fetchWithPool, destroy: () => dispatcher.destroy() };
}
