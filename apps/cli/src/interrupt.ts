import { ErrorCode, SwitchyardError, type SwitchyardClient } from '@switchyard/sdk';
import { EXIT } from './exit-codes.js';
import type { CliIo } from './io.js';

/** The reason a command's signal carries when the user pressed Ctrl-C. */
class Interrupted extends Error {
  override readonly name = 'Interrupted';
}

/**
 * A command's Ctrl-C: `signal` aborts its requests, `interrupted()` says whether that is why
 * they failed, `stop()` removes the listener.
 */
export function listenForInterrupt(io: CliIo): { signal: AbortSignal; interrupted(): boolean; stop(): void } {
  const controller = new AbortController();
  const stop = io.onInterrupt(() => controller.abort(new Interrupted('interrupted')));
  return { signal: controller.signal, interrupted: () => controller.signal.aborted && controller.signal.reason instanceof Interrupted, stop };
}

/** After a Ctrl-C: cancels the job it had submitted (a job that already ended counts as cancelled) and says so. */
export async function cancelInterruptedJob(io: CliIo, client: SwitchyardClient, jobId: string | undefined): Promise<number> {
  if (jobId !== undefined) {
    const cancelled = await client.cancel(jobId, { signal: AbortSignal.timeout(5_000) }).then(
      () => true,
      (cancelError: unknown) => cancelError instanceof SwitchyardError && cancelError.code === ErrorCode.jobFinished,
    );
    io.stderr.write(cancelled ? `\ncancelled job ${jobId}\n` : `\ninterrupted; could not confirm the cancellation of job ${jobId}\n`);
  } else {
    io.stderr.write('\ninterrupted\n');
  }
  return EXIT.interrupted;
}
