/** The CLI's exit codes; scripts rely on them. */
export const EXIT = {
  ok: 0,
  /** The job failed, was cancelled elsewhere, or expired. */
  jobFailed: 1,
  /** Bad command line (unknown command or flag, missing model or prompt), or a 400 for the request. */
  usage: 2,
  /** The API refused (401/403/404/409/429/503, …) or could not be reached. */
  refused: 3,
  /** Interrupted with Ctrl-C (128 + SIGINT), after cancelling the job. */
  interrupted: 130,
} as const;
