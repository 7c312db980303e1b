import { describe, expect, it } from 'vitest';
import { clockTicksPerSecond, cpuMicros, CpuMeter, parseProcNetTcp, parseProcStat, parseSystemCpu } from './proc-stat.js';

describe('parseProcStat', () => {
  it('reads utime and stime (fields 14 and 15)', () => {
    const line = '27115 (node) S 27112 27112 9211 0 -1 4194304 101 0 0 0 1234 567 0 0 20 0 11 0 234990 3133440 393 18446744073709551615';
    expect(parseProcStat(line)).toEqual({ utime: 1234, stime: 567 });
  });

  it('counts fields from the last parenthesis, whatever the command name holds', () => {
    const line = '42 (my (odd) name) R 1 42 42 0 -1 4194560 5 0 0 0 7 3 0 0 20 0 1 0 100 1000 10 18446744073709551615\n';
    expect(parseProcStat(line)).toEqual({ utime: 7, stime: 3 });
  });

  it('refuses what is not a stat line', () => {
    expect(() => parseProcStat('garbage')).toThrow();
    expect(() => parseProcStat('1 (x) S 0')).toThrow();
  });

  it.runIf(process.platform === 'linux')('reads this process, in microseconds of clock ticks', () => {
    expect(clockTicksPerSecond()).toBeGreaterThan(0);
    const meter = new CpuMeter({ me: process.pid });
    meter.start();
    const until = performance.now() + 60;
    while (performance.now() < until) Math.sqrt(Math.random());
    const used = meter.stop();
    expect(used.self).toBeGreaterThan(30_000);
    expect(used.me).toBeGreaterThanOrEqual(0);
    expect(cpuMicros(process.pid) % (1e6 / clockTicksPerSecond())).toBeCloseTo(0, 6);
  });
});

describe('parseSystemCpu', () => {
  it('sums busy, idle and steal ticks from the aggregate line', () => {
    const text = 'cpu  269196 2838 59409 214565 789 0 2887 1865 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\nintr 1\n';
    expect(parseSystemCpu(text)).toEqual({ busy: 269196 + 2838 + 59409 + 0 + 2887, idle: 214565 + 789, steal: 1865 });
    expect(() => parseSystemCpu('intr 1')).toThrow();
  });
});

describe('parseProcNetTcp', () => {
  it('reads ports (hex) and inodes, skipping the header', () => {
    const text = [
      '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
      '   0: 0100007F:B057 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 404470 1 0000000087554f4f 100 0 0 10 0',
      '   1: 0100007F:C350 0100007F:18EB 01 00000000:00000000 00:00000000 00000000     0        0 5150 1 0000000000000000 20 4 30 10 -1',
      '',
    ].join('\n');
    expect(parseProcNetTcp(text)).toEqual([
      { localPort: 0xb057, remotePort: 0, inode: 404470 },
      { localPort: 50000, remotePort: 6379, inode: 5150 },
    ]);
  });
});
