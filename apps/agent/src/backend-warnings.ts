import type { Logger } from 'pino';
import type { ModelInventory } from './model-inventory.js';

/** The socket's word for a failure (ECONNREFUSED, ENOTFOUND…) from anywhere in its cause chain, else its message. */
export function failureReason(error: unknown): string {
  for (let cause = error, depth = 0; cause instanceof Error && depth < 5; cause = cause.cause, depth++) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return code;
  }
  return error instanceof Error ? error.message : String(error);
}

/**
 * Reads the backend's models for the first time and says once, naming the setting to change,
 * when it does not answer or lists nothing. Said once at start (the refresh loop keeps
 * trying quietly, and says when it answers): an agent in front of nothing is otherwise
 * "ready" with no models and no hint why.
 */
export async function firstInventoryRead(options: {
  inventory: Pick<ModelInventory, 'refresh' | 'models' | 'lastError'>;
  backendUrl: string;
  /** The setting the backend URL came from. */
  setting: string;
  refreshMs: number;
  logger: Logger;
}): Promise<void> {
  const { inventory, backendUrl, setting, logger } = options;
  if (!(await inventory.refresh())) {
    const reason = failureReason(inventory.lastError);
    logger.warn(
      { err: inventory.lastError, backend: backendUrl },
      `backend at ${backendUrl} does not answer (${reason}): start Ollama there or set ${setting} to where it listens; retrying every ${options.refreshMs / 1000} s`,
    );
  } else if (inventory.models().length === 0) {
    logger.warn({ backend: backendUrl }, `backend at ${backendUrl} has no models: pull one there (ollama pull qwen2.5:0.5b); this agent serves what it lists`);
  }
}
