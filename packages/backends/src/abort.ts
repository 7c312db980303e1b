/**
 * The error an aborted operation rejects with. The signal's own reason wins when it is an
 * Error, so a caller that aborts with a TimeoutError (deadline) can tell it from a plain
 * cancel; anything else becomes the standard AbortError DOMException.
 */
export function abortError(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  if (reason instanceof Error) return reason;
  return new DOMException(reason === undefined ? 'This operation was aborted' : `This operation was aborted: ${String(reason)}`, 'AbortError');
}
