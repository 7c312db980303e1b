import { Redis } from 'ioredis';

/**
 * Samples every command Redis runs for `ms` (MONITOR) and counts them by the connection
 * name of the process that sent them (`CLIENT SETNAME`; `lua` for commands a script ran),
 * so a benchmark can say which process costs which commands.
 */
export async function sampleCommands(url: string, ms: number): Promise<Array<{ source: string; command: string; count: number }>> {
  const admin = new Redis(url);
  const names = new Map<string, string>();
  const list = String(await admin.client('LIST'));
  for (const line of list.split('\n')) {
    const addr = /addr=(\S+)/.exec(line)?.[1];
    const name = /name=(\S*)/.exec(line)?.[1];
    if (addr) names.set(addr, name || 'unnamed');
  }
  const monitor = await admin.monitor();
  const counts = new Map<string, number>();
  monitor.on('monitor', (_time: string, args: string[], source: string) => {
    const command = String(args[0]).toLowerCase();
    const who = source.startsWith('lua') ? 'lua' : (names.get(source) ?? 'other').replace(/-[a-z0-9]{6}$/, '');
    const key = `${who}\t${command === 'evalsha' ? `evalsha:${String(args[1]).slice(0, 7)}` : command}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  });
  await new Promise((resolve) => setTimeout(resolve, ms));
  monitor.disconnect();
  admin.disconnect();
  return [...counts]
    .map(([key, count]) => {
      const [source, command] = key.split('\t') as [string, string];
      return { source, command, count };
    })
    .sort((a, b) => b.count - a.count);
}
