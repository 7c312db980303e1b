/**
 * CPU time of processes from /proc (Linux), for per-job figures that do not depend on how
 * busy the (shared) machine is: user + system time a process was actually scheduled,
 * rather than the wall time it took.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';

export interface CpuTicks {
  /** Clock ticks in user mode (field 14 of /proc/<pid>/stat), all threads of the process. */
  utime: number;
  /** Clock ticks in kernel mode (field 15). */
  stime: number;
}

/**
 * utime and stime from the text of /proc/<pid>/stat. The second field (the command name)
 * is in parentheses and may itself contain spaces and parentheses, so the fields are
 * counted from the last ')'.
 */
export function parseProcStat(text: string): CpuTicks {
  const end = text.lastIndexOf(')');
  if (end < 0) throw new Error(`not a /proc/<pid>/stat line: ${text.slice(0, 80)}`);
  // After ") " come field 3 (state), 4 (ppid), …: utime is field 14, stime field 15.
  const fields = text
    .slice(end + 2)
    .trim()
    .split(/\s+/);
  const utime = Number(fields[14 - 3]);
  const stime = Number(fields[15 - 3]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) throw new Error(`no utime/stime in /proc/<pid>/stat: ${text.slice(0, 80)}`);
  return { utime, stime };
}

let ticksPerSecond: number | undefined;

/** `getconf CLK_TCK` (the unit of utime/stime), 100 when it cannot be asked. */
export function clockTicksPerSecond(): number {
  if (ticksPerSecond === undefined) {
    try {
      const value = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
      ticksPerSecond = Number.isFinite(value) && value > 0 ? value : 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** User + system CPU time of a process so far, in microseconds (resolution: one clock tick). */
export function cpuMicros(pid: number): number {
  const { utime, stime } = parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  return ((utime + stime) * 1e6) / clockTicksPerSecond();
}

export interface SystemCpuTicks {
  /** user + nice + system + irq + softirq, all CPUs. */
  busy: number;
  /** idle + iowait. */
  idle: number;
  /** Time the hypervisor ran something else while this machine's CPUs wanted to run. */
  steal: number;
}

/** The aggregate `cpu` line of /proc/stat (clock ticks summed over all CPUs). */
export function parseSystemCpu(text: string): SystemCpuTicks {
  const line = text.split('\n').find((l) => l.startsWith('cpu '));
  if (!line) throw new Error('no cpu line in /proc/stat');
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = line.trim().split(/\s+/).slice(1).map(Number);
  return { busy: user + nice + system + irq + softirq, idle: idle + iowait, steal };
}

/**
 * CPU time of named processes between two points: `start()`, then `stop()` gives each
 * process's user + system microseconds in between. The benchmark's own process is read
 * with `process.cpuUsage()` (microsecond resolution) under the name `self`, if asked;
 * `@machine` and `@steal` are the whole machine's busy and stolen time (/proc/stat).
 */
export class CpuMeter {
  private before = new Map<string, number>();

  constructor(
    private readonly pids: Record<string, number>,
    private readonly includeSelf = true,
  ) {}

  private read(): Map<string, number> {
    const now = new Map<string, number>();
    for (const [name, pid] of Object.entries(this.pids)) now.set(name, cpuMicros(pid));
    if (this.includeSelf) {
      const self = process.cpuUsage();
      now.set('self', self.user + self.system);
    }
    // The whole machine, to tell how much of it other processes used meanwhile.
    try {
      const system = parseSystemCpu(readFileSync('/proc/stat', 'utf8'));
      const us = 1e6 / clockTicksPerSecond();
      now.set('@machine', system.busy * us);
      now.set('@steal', system.steal * us);
    } catch {
      // not Linux
    }
    return now;
  }

  start(): void {
    this.before = this.read();
  }

  stop(): Record<string, number> {
    const after = this.read();
    return Object.fromEntries([...after].map(([name, us]) => [name, us - (this.before.get(name) ?? 0)]));
  }
}

export interface TcpSocket {
  localPort: number;
  remotePort: number;
  inode: number;
}

/** The sockets listed in /proc/net/tcp (or tcp6): ports are hex after the ':'. */
export function parseProcNetTcp(text: string): TcpSocket[] {
  const sockets: TcpSocket[] = [];
  for (const line of text.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 10) continue;
    const port = (address: string | undefined) => Number.parseInt(address?.split(':')[1] ?? '', 16);
    const socket = { localPort: port(fields[1]), remotePort: port(fields[2]), inode: Number(fields[9]) };
    if (Number.isFinite(socket.localPort) && Number.isFinite(socket.remotePort) && socket.inode > 0) sockets.push(socket);
  }
  return sockets;
}

/**
 * Which of the given processes owns each client connection to the server on `serverPort`:
 * client port → process name, from /proc/net/tcp and each process's open file descriptors.
 * For naming the connections a Redis client list or slowlog shows without a name.
 */
export function clientPortOwners(serverPort: number, pids: Record<string, number>): Map<number, string> {
  const inodeToPort = new Map<number, number>();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const socket of parseProcNetTcp(text)) if (socket.remotePort === serverPort) inodeToPort.set(socket.inode, socket.localPort);
  }
  const owners = new Map<number, string>();
  for (const [name, pid] of Object.entries(pids)) {
    let fds: string[] = [];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      let target = '';
      try {
        target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
      const port = inode === undefined ? undefined : inodeToPort.get(Number(inode));
      if (port !== undefined) owners.set(port, name);
    }
  }
  return owners;
}
