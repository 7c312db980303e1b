import { ClientErrorCode, SwitchyardError } from '@switchyard/sdk';
import { EXIT } from './exit-codes.js';
import type { CliIo } from './io.js';

/** A problem with the command line itself: printed with the usage, exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** Prints an error the way the CLI reports it and returns the exit code it stands for. */
export function reportError(io: CliIo, error: unknown): number {
  if (error instanceof UsageError) {
    io.stderr.write(`switchyard: ${error.message}\nRun 'switchyard --help' for usage.\n`);
    return EXIT.usage;
  }
  if (error instanceof SwitchyardError) {
    const retry = error.retryAfterS !== undefined ? ` (retry after ${Math.ceil(error.retryAfterS)}s)` : '';
    io.stderr.write(`switchyard: ${error.code}: ${error.message}${retry}\n`);
    if (error.jobId !== undefined && error.status === undefined) return EXIT.jobFailed;
    if (error.code === ClientErrorCode.connectionFailed) return EXIT.refused;
    if (error.status === 400 || error.status === 413 || error.status === 415) return EXIT.usage;
    if (error.status !== undefined && error.status >= 400) return EXIT.refused;
    return EXIT.jobFailed;
  }
  io.stderr.write(`switchyard: ${(error as Error)?.message ?? String(error)}\n`);
  return EXIT.jobFailed;
}
