import { type EmbedOptions, type StreamEvent, type SwitchyardClient } from '@switchyard/sdk';
import { EXIT } from '../exit-codes.js';
import { reportError } from '../errors.js';
import type { CliIo } from '../io.js';
import { cancelInterruptedJob, listenForInterrupt } from '../interrupt.js';
import { Progress } from '../progress.js';
import { queuedText } from './run.js';

export interface EmbedArgs {
  model: string;
  /** One vector each, in this order. */
  inputs: string[];
  /** Shorten each vector to this many dimensions (`--dimensions`). */
  dimensions?: number;
  /** `--no-truncate`: an input longer than the model's context fails instead of being cut. */
  truncate?: false;
  priority?: string;
  /** `--dims`: a summary line per vector instead of the vectors. */
  summary: boolean;
  json: boolean;
}

/** Values of a vector the `--dims` summary shows. */
const SHOWN_VALUES = 4;

/**
 * `switchyard embed <model> <text...>`: one embed job (`kind: "embed"`) for all the texts,
 * through the SDK's `embed`. Prints one vector per line as a JSON array, in input order
 * (`jq`-friendly; one text gives one line); `--dims` prints a summary per vector instead
 * (dimensions, norm, first values), `--json` one JSON object with the vectors, usage and
 * timings. The queue position shows on stderr while the job waits; Ctrl-C cancels it.
 */
export async function embedCommand(io: CliIo, client: SwitchyardClient, args: EmbedArgs): Promise<number> {
  const interrupt = listenForInterrupt(io);
  const progress = new Progress(io.stderr, !args.json);
  let jobId: string | undefined;
  let done: Extract<StreamEvent, { type: 'done' }> | undefined;
  try {
    if (io.stderr.isTTY) progress.set(`submitting to ${args.model}`);
    const options: EmbedOptions = {
      signal: interrupt.signal,
      ...(args.dimensions !== undefined && { dimensions: args.dimensions }),
      ...(args.truncate === false && { truncate: false }),
      ...(args.priority !== undefined && { priority: args.priority as EmbedOptions['priority'] }),
      onSubmitted: (job) => {
        jobId = job.id;
        if (job.queue) progress.set(queuedText(job.id, job.queue.position, job.queue.depth, job.queue.eta_s as number | undefined));
      },
      onEvent: (event) => {
        if (event.type === 'queued' && jobId !== undefined) progress.set(queuedText(jobId, event.position, event.depth, event.eta_s));
        else if (event.type === 'started' && jobId !== undefined) progress.set(`job ${jobId}: embedding ${args.inputs.length} input(s) on ${event.agent}`);
        else if (event.type === 'done') done = event;
      },
    };
    const vectors = await client.embed(args.model, args.inputs, options);
    progress.stop();
    if (args.json) {
      const answer = { id: jobId, model: args.model, embeddings: vectors, ...(done && { usage: done.usage, timings: done.timings }) };
      io.stdout.write(`${JSON.stringify(answer)}\n`);
    } else if (args.summary) {
      for (const [index, vector] of vectors.entries()) io.stdout.write(`${vectorSummary(index, vector, args.inputs[index] ?? '')}\n`);
    } else {
      for (const vector of vectors) io.stdout.write(`${JSON.stringify(vector)}\n`);
    }
    return EXIT.ok;
  } catch (error) {
    progress.stop();
    if (interrupt.interrupted()) return cancelInterruptedJob(io, client, jobId);
    return reportError(io, error);
  } finally {
    interrupt.stop();
  }
}

/** `0  768 dims  norm 1.0000  [0.0123, -0.0456, 0.0789, 0.0012, …]  "the text"` (long texts cut). */
export function vectorSummary(index: number, vector: number[], input: string): string {
  const norm = Math.sqrt(vector.reduce((sum, value) => sum + value * value, 0));
  const values = vector.slice(0, SHOWN_VALUES).map((value) => value.toFixed(4));
  const shown = `[${values.join(', ')}${vector.length > SHOWN_VALUES ? ', …' : ''}]`;
  const text = input.length > 40 ? `${input.slice(0, 39)}…` : input;
  return `${index}  ${vector.length} dims  norm ${norm.toFixed(4)}  ${shown}  ${JSON.stringify(text)}`;
}
