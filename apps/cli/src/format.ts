/** Text formatting for terminal output: sizes, durations, bars, aligned tables. */

const GIB = 2 ** 30;
const MIB = 2 ** 20;

/** Bytes as Ollama prints them (`4.7 GB` style, binary units spelled GiB/MiB). */
export function formatBytes(bytes: number): string {
  if (bytes >= GIB) return `${(bytes / GIB).toFixed(1)} GiB`;
  if (bytes >= MIB) return `${Math.round(bytes / MIB)} MiB`;
  return `${bytes} B`;
}

/** Seconds as `850ms`, `12s`, `3m05s`, `2h04m`. */
export function formatDuration(seconds: number): string {
  if (seconds < 1) return `${Math.round(seconds * 1000)}ms`;
  if (seconds < 60) return `${seconds < 10 ? seconds.toFixed(1) : Math.round(seconds)}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m${String(Math.round(seconds % 60)).padStart(2, '0')}s`;
  return `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, '0')}m`;
}

/** A fixed-width usage bar: `[██████░░░░░░░░░░░░░░]`. */
export function bar(used: number, total: number, width = 20): string {
  const ratio = total > 0 ? Math.min(1, Math.max(0, used / total)) : 0;
  const filled = Math.round(ratio * width);
  return `[${'█'.repeat(filled)}${'░'.repeat(width - filled)}]`;
}

/** Rows as aligned columns (the last column is not padded). */
export function table(rows: string[][], indent = ''): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, index) => (widths[index] = Math.max(widths[index] ?? 0, [...cell].length)));
  return rows
    .map((row) => indent + row.map((cell, index) => (index === row.length - 1 ? cell : cell + ' '.repeat((widths[index] ?? 0) - [...cell].length))).join('   '))
    .join('\n');
}

/** `12s ago` for an epoch-ms time. */
export function ago(epochMs: number, now = Date.now()): string {
  if (epochMs <= 0) return 'never';
  return `${formatDuration(Math.max(0, (now - epochMs) / 1000))} ago`;
}
