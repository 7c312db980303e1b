/**
 * The simulator's one error type. Each code maps to the HTTP status Ollama answers for the
 * same situation, here and nowhere else; the message is Ollama's wording where it has one.
 */
export type SimErrorCode = 'bad_request' | 'model_not_found' | 'model_too_large' | 'queue_full' | 'shutting_down' | 'payload_too_large' | 'internal';

const HTTP_STATUS: Readonly<Record<SimErrorCode, number>> = {
  bad_request: 400,
  model_not_found: 404,
  payload_too_large: 413,
  // Ollama answers 500 when a model can never fit ("model requires more system memory ...").
  model_too_large: 500,
  internal: 500,
  queue_full: 503,
  shutting_down: 503,
};

export class SimError extends Error {
  override name = 'SimError';
  constructor(
    readonly code: SimErrorCode,
    message: string,
  ) {
    super(message);
  }

  get status(): number {
    return HTTP_STATUS[this.code];
  }
}

export function isAbortError(error: unknown): boolean {
  return error instanceof Error && error.name === 'AbortError';
}
