import type { SwitchyardClient } from '@switchyard/sdk';
import { EXIT } from '../exit-codes.js';
import type { CliIo } from '../io.js';

/**
 * `switchyard drain <agent> [--undo]`: an operator's drain of one agent (admin key). It
 * claims nothing and finishes its running jobs; `--undo` lets it claim again.
 */
export async function drainCommand(io: CliIo, client: SwitchyardClient, args: { agent: string; undo: boolean; json: boolean }): Promise<number> {
  const answer = await client.drainAgent(args.agent, { undo: args.undo });
  if (args.json) io.stdout.write(`${JSON.stringify(answer)}\n`);
  else if (args.undo) io.stdout.write(`agent ${answer.id}: undrained; it claims jobs again\n`);
  else io.stdout.write(`agent ${answer.id}: draining; it claims nothing more and finishes its ${answer.in_flight} running job(s) (switchyard ps shows it)\n`);
  return EXIT.ok;
}
