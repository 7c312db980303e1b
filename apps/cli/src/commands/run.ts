import { ErrorCode, type JobRequestInput, type StreamEvent, type SwitchyardClient, type ToolCallEvent, type ToolChoice, type ToolDefinition } from '@switchyard/sdk';
import { EXIT } from '../exit-codes.js';
import { reportError } from '../errors.js';
import { formatDuration } from '../format.js';
import type { CliIo } from '../io.js';
import { cancelInterruptedJob, listenForInterrupt } from '../interrupt.js';
import { Progress } from '../progress.js';

export interface RunArgs {
  model: string;
  prompt: string;
  system?: string;
  options: NonNullable<JobRequestInput['options']>;
  priority?: string;
  format?: 'json';
  /** Functions the model may call (`--tools <file>`): the prompt goes as a user message. */
  tools?: ToolDefinition[];
  toolChoice?: ToolChoice;
  json: boolean;
  verbose: boolean;
}

/**
 * `switchyard run <model> [prompt]`: submits a job, shows its queue position and model load
 * on stderr while it waits, streams its tokens to stdout (resuming dropped connections), and
 * cancels it on Ctrl-C. A call the model makes (with `--tools`) is a line of its own on
 * stdout (see {@link toolCallLine}). With `--json`, stdout gets every event as one JSON line
 * instead, `tool_call` events included.
 */
export async function runCommand(io: CliIo, client: SwitchyardClient, args: RunArgs): Promise<number> {
  const interrupt = listenForInterrupt(io);
  const progress = new Progress(io.stderr, !args.json);
  let jobId: string | undefined;
  let poller: ReturnType<typeof setInterval> | undefined;
  try {
    // Tools need a chat: the system prompt and the prompt become its two messages.
    const input: Pick<JobRequestInput, 'prompt' | 'system' | 'messages'> =
      args.tools === undefined
        ? { prompt: args.prompt, ...(args.system !== undefined && { system: args.system }) }
        : { messages: [...(args.system !== undefined ? [{ role: 'system' as const, content: args.system }] : []), { role: 'user' as const, content: args.prompt }] };
    const request: JobRequestInput = {
      model: args.model,
      ...input,
      ...(args.tools !== undefined && { tools: args.tools }),
      ...(args.toolChoice !== undefined && { tool_choice: args.toolChoice }),
      ...(Object.keys(args.options).length > 0 && { options: args.options }),
      ...(args.priority !== undefined && { priority: args.priority as JobRequestInput['priority'] }),
      ...(args.format !== undefined && { format: args.format }),
    };
    if (io.stderr.isTTY) progress.set(`submitting to ${args.model}`);
    const job = await client.submit(request, { signal: interrupt.signal });
    jobId = job.id;
    let etaS = job.queue?.eta_s as number | undefined;
    if (job.queue) progress.set(queuedText(job.id, job.queue.position, job.queue.depth, etaS));

    let sawToken = false;
    let endsWithNewline = true;

    // Load progress from the model list (any key may read it): where the model is loaded and
    // where it is loading, as the agents' heartbeats report; the job's status is `loading`
    // once an agent holds it while the model comes in. A job next in line for a model no node
    // has loaded waits for a cold start. Until the job starts, one poll at a time.
    let started = false;
    let polling = false;
    poller = setInterval(() => {
      if (started || polling) return;
      polling = true;
      const call = { signal: interrupt.signal };
      const model = client.models(call).then(
        (models) => models.find((entry) => entry.id === job.model),
        () => undefined,
      );
      void Promise.all([client.get(job.id, call), model])
        .then(([record, entry]) => {
          if (started) return;
          const loadingOn = entry?.loading_on ?? [];
          if (record.status === 'loading') {
            progress.set(`job ${job.id}: loading ${job.model}${record.agent ? ` on ${record.agent}` : ''}`);
          } else if (record.status === 'queued') {
            const cold = entry !== undefined && (entry.loaded_on ?? []).length === 0;
            const position = record.queue_position ?? 0;
            etaS = record.queue_eta_s ?? etaS;
            if (loadingOn.length > 0) progress.set(`job ${job.id}: queued, ${job.model} is loading on ${loadingOn.join(', ')}`);
            else if (cold && position === 0) progress.set(`job ${job.id}: waiting for ${job.model} to load (cold start)`);
            else progress.set(queuedText(job.id, position, undefined, etaS));
          }
        })
        .catch(() => undefined)
        .finally(() => {
          polling = false;
        });
    }, 1_000);
    poller.unref?.();

    let outcome: StreamEvent | undefined;
    for await (const event of client.stream(job, { signal: interrupt.signal })) {
      if (args.json) io.stdout.write(`${JSON.stringify(event)}\n`);
      switch (event.type) {
        case 'queued':
          etaS = (event as { eta_s?: number }).eta_s ?? etaS;
          if (!sawToken) progress.set(queuedText(job.id, event.position, event.depth, etaS));
          break;
        case 'started':
          started = true;
          if (event.cold && args.verbose) {
            progress.clear();
            io.stderr.write(`loaded ${args.model} on ${event.agent} in ${formatDuration(event.load_ms / 1000)}\n`);
          }
          break;
        case 'token':
          if (!sawToken) progress.stop();
          sawToken = true;
          if (!args.json) io.stdout.write(event.text);
          if (event.text) endsWithNewline = event.text.endsWith('\n');
          break;
        case 'tool_call':
          if (!sawToken) progress.stop();
          sawToken = true;
          if (!args.json) {
            io.stdout.write(`${endsWithNewline ? '' : '\n'}${toolCallLine(event)}\n`);
            endsWithNewline = true;
          }
          break;
        case 'resumed':
          // The answer continues where it was: nothing printed is void.
          break;
        case 'restarted':
          progress.clear();
          if (!args.json) {
            io.stderr.write(
              `${endsWithNewline ? '' : '\n'}[switchyard] the job lost its node and restarted elsewhere (attempt ${event.attempt}): the output above (text and tool calls) is void; the answer starts again\n`,
            );
            endsWithNewline = true;
          }
          break;
        case 'done':
        case 'error':
          outcome = event;
      }
    }
    progress.stop();
    if (!args.json && !endsWithNewline) io.stdout.write('\n');
    if (outcome?.type === 'done') {
      if (args.verbose) io.stderr.write(stats(outcome, job.id));
      return EXIT.ok;
    }
    if (outcome?.type === 'error') {
      io.stderr.write(`switchyard: job ${job.id} ${outcome.code === ErrorCode.cancelled ? 'was cancelled' : 'failed'}: ${outcome.code}: ${outcome.message}\n`);
      return EXIT.jobFailed;
    }
    io.stderr.write(`switchyard: the stream of job ${job.id} ended without a result\n`);
    return EXIT.jobFailed;
  } catch (error) {
    progress.stop();
    if (interrupt.interrupted()) return cancelInterruptedJob(io, client, jobId);
    return reportError(io, error);
  } finally {
    if (poller) clearInterval(poller);
    interrupt.stop();
  }
}

/**
 * A call the model made, as the default output shows it: `[tool call] name {arguments}` and
 * its id (the id a tool message answers it by), on a line of its own.
 */
export function toolCallLine(call: Pick<ToolCallEvent, 'id' | 'name' | 'arguments'>): string {
  return `[tool call] ${call.name} ${JSON.stringify(call.arguments)} (id ${call.id})`;
}

export function queuedText(jobId: string, position: number, depth: number | undefined, etaS: number | undefined): string {
  const place = position === 0 ? 'next in line' : `position ${position + 1}${depth !== undefined ? ` of ${depth}` : ''}`;
  const eta = etaS !== undefined && etaS > 0 ? `, starts in ~${formatDuration(etaS)}` : '';
  return `job ${jobId}: queued, ${place}${eta}`;
}

/** `ollama run --verbose`-style timings. */
function stats(done: Extract<StreamEvent, { type: 'done' }>, jobId: string): string {
  const { timings, usage } = done;
  const evalSeconds = Math.max(0.001, (timings.total_ms - timings.ttft_ms) / 1000);
  const rows: Array<[string, string]> = [
    ['job', jobId],
    ['total duration', formatDuration(timings.total_ms / 1000)],
    ['queued', formatDuration(timings.queued_ms / 1000)],
    ['load duration', formatDuration(timings.load_ms / 1000)],
    ['time to first token', formatDuration(timings.ttft_ms / 1000)],
    ['prompt eval count', `${usage.prompt_tokens} token(s)`],
    ['eval count', `${usage.completion_tokens} token(s)`],
    ['eval rate', `${(usage.completion_tokens / evalSeconds).toFixed(2)} tokens/s`],
    ['finish reason', done.finish_reason],
  ];
  return rows.map(([name, value]) => `${`${name}:`.padEnd(22)}${value}\n`).join('');
}
