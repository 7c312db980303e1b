import { spawn } from 'node:child_process';

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** When the process ended (Date.now()). */
  at: number;
}

export interface NodeProcess {
  pid: number;
  /** Settles when the process has exited and its output is read. */
  exited: Promise<Exit>;
  /** Resolves with the first line of `stream` that matches; rejects if the process ends first. */
  line(stream: 'stdout' | 'stderr', pattern: RegExp): Promise<string>;
  /** What it printed so far. */
  output(): { stdout: string; stderr: string };
  kill(signal: NodeJS.Signals): void;
}

/**
 * Runs a built entry point (`node <script>`) as a user would, with only the environment
 * given (and PATH): the test run's own variables (REDIS_URL…) do not leak in. Killed after
 * `timeoutMs` so a hung process fails its test instead of the run.
 */
export function runNode(script: string, env: Record<string, string>, timeoutMs = 30_000): NodeProcess {
  const child = spawn(process.execPath, [script], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const output = { stdout: '', stderr: '' };
  const waiters: Array<{ stream: 'stdout' | 'stderr'; pattern: RegExp; resolve: (line: string) => void }> = [];
  const check = () => {
    for (const waiter of [...waiters]) {
      // Whole lines only: the last piece may still be arriving.
      const match = output[waiter.stream]
        .split('\n')
        .slice(0, -1)
        .find((line) => waiter.pattern.test(line));
      if (match === undefined) continue;
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.resolve(match);
    }
  };
  for (const stream of ['stdout', 'stderr'] as const) {
    child[stream].setEncoding('utf8').on('data', (chunk: string) => {
      output[stream] += chunk;
      check();
    });
  }
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const exited = new Promise<Exit>((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, ...output, at: Date.now() });
    });
  });
  return {
    pid: child.pid!,
    exited,
    line: (stream, pattern) =>
      new Promise<string>((resolve, reject) => {
        waiters.push({ stream, pattern, resolve });
        check();
        void exited.then(() => reject(new Error(`the process exited before its ${stream} had a line matching ${pattern}:\n${output.stdout}\n${output.stderr}`)));
      }),
    output: () => ({ ...output }),
    kill: (signal) => child.kill(signal),
  };
}

/** The lines of a pino JSON log whose message matches. */
export function logLines(text: string, pattern: RegExp): Array<{ level: number; msg: string; [key: string]: unknown }> {
  return text
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as { level: number; msg: string })
    .filter((entry) => pattern.test(entry.msg));
}
