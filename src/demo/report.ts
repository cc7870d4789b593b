// The demo's tables: per opcode, served in the kernel vs sent to the daemon; per replica,
// the I/O each side did.
import type { MountStats, PerBacking } from '../sdk/stats.ts';

export function table(head: string[], rows: (string | number)[][], rightFrom = 1): string {
  const cells = [head, ...rows.map((r) => r.map(String))];
  const w = head.map((_, i) => Math.max(...cells.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => (i >= rightFrom ? c.padStart(w[i]!) : c.padEnd(w[i]!))).join('  ').trimEnd();
  return [line(head), w.map((n) => '-'.repeat(n)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1 << 20) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / (1 << 20)).toFixed(2)} MiB`;
}

/** Requests per opcode: served by the program vs received by the daemon. */
export function opcodeTable(s: MountStats): string {
  const rank = (n: string) => ['READ', 'WRITE'].indexOf(n) >>> 0; // the data path first, then by volume
  const rows = Object.entries(s)
    .map(([n, v]) => [n, v.kernel ?? 0, v.daemon] as [string, number, number])
    .sort((a, b) => (rank(a[0]) - rank(b[0])) || (b[1] + b[2] - a[1] - a[2]) || a[0].localeCompare(b[0]));
  const kernel = rows.reduce((n, r) => n + r[1], 0);
  const daemon = rows.reduce((n, r) => n + r[2], 0);
  return table(['opcode', 'served in kernel', 'sent to daemon'], [...rows, ['total', kernel, daemon]]);
}

export function replicaTable(p: PerBacking, dirs: string[]): string {
  const rows: (string | number)[][] = [];
  dirs.forEach((dir, i) => {
    const k = p.kernel?.[i];
    const d = p.daemon[i]!;
    if (k) rows.push([`${i} ${dir}`, 'kernel', k.reads, bytes(k.readBytes), k.writes, bytes(k.writeBytes), k.errors, k.cached]);
    rows.push([k ? '' : `${i} ${dir}`, 'daemon', d.reads, bytes(d.readBytes), d.writes, bytes(d.writeBytes), d.errors, '-']);
  });
  return table(['replica', 'by', 'reads', 'bytes read', 'writes', 'bytes written', 'errors', 'cached ref'], rows, 2);
}
