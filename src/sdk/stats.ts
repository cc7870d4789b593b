// The stats model of `mount()`: per opcode, how many requests the kernel program served
// (kernel) and how many reached the daemon (daemon). Pure functions, unit-tested.
//
// daemon: the server's own per-opcode counters (every request it received).
// kernel: the program's "fuse_kfunc_stats" map (bpf/include/fuse_kfunc_stats.h), which a
//   program fills with FUSE_KFUNC_COUNT(ctx, ret). Without a program nothing runs in the
//   kernel, so kernel is 0; with a program lacking that map it is null ("unknown"): the
//   daemon cannot see requests that never reached it, and nothing else counts them.
import { opName } from '../fuse/protocol.ts';
import type { BackingCounts } from './contract.ts';

export const STATS_MAP = 'fuse_kfunc_stats';
export const STATS_OP_MAX = 64;
export const STATS_VALUE_SIZE = 16;

export interface OpStat {
  /** Served by the BPF program in the kernel; null when the program does not count. */
  kernel: number | null;
  /** Requests the daemon received (includes the program's upcalls). */
  daemon: number;
}

export type MountStats = Record<string, OpStat>;

export interface KernelCounts {
  served: number;
  upcalled: number;
}

/** One value of fuse_kfunc_stats: { __u64 served; __u64 upcalled; } */
export function decodeKernelValue(v: Uint8Array): KernelCounts {
  if (v.byteLength !== STATS_VALUE_SIZE) throw new Error(`${STATS_MAP} value is ${v.byteLength} bytes, expected ${STATS_VALUE_SIZE}`);
  const b = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  return { served: Number(b.readBigUInt64LE(0)), upcalled: Number(b.readBigUInt64LE(8)) };
}

/** The map's entries (opcode -> value), non-zero ones, by opcode name. */
export function decodeKernelStats(lookup: (op: number) => Uint8Array | undefined): Record<string, KernelCounts> {
  const out: Record<string, KernelCounts> = {};
  for (let op = 0; op < STATS_OP_MAX; op++) {
    const v = lookup(op);
    if (!v) continue;
    const c = decodeKernelValue(v);
    if (c.served || c.upcalled) out[opName(op)] = c;
  }
  return out;
}

/**
 * kernel === undefined: no program (kernel serves nothing: 0 everywhere);
 * kernel === null: a program that does not count (unknown).
 */
export function mergeStats(daemon: Record<string, number>, kernel: Record<string, KernelCounts> | null | undefined): MountStats {
  const ops = new Set([...Object.keys(daemon), ...Object.keys(kernel ?? {})]);
  const out: MountStats = {};
  for (const op of [...ops].sort()) {
    out[op] = {
      kernel: kernel === null ? null : kernel === undefined ? 0 : kernel[op]?.served ?? 0,
      daemon: daemon[op] ?? 0,
    };
  }
  return out;
}

export function totals(s: MountStats): OpStat {
  let kernel: number | null = 0;
  let daemon = 0;
  for (const v of Object.values(s)) {
    kernel = kernel === null || v.kernel === null ? null : kernel + v.kernel;
    daemon += v.daemon;
  }
  return { kernel, daemon };
}

/** A fixed-width table: opcode, kernel, daemon; then the totals. */
export function formatStats(s: MountStats): string {
  const rows = Object.entries(s).map(([op, v]) => [op, v.kernel === null ? 'unknown' : String(v.kernel), String(v.daemon)]);
  const t = totals(s);
  rows.push(['total', t.kernel === null ? 'unknown' : String(t.kernel), String(t.daemon)]);
  const head = ['opcode', 'kernel', 'daemon'];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => `${r[0]!.padEnd(w[0]!)}  ${r[1]!.padStart(w[1]!)}  ${r[2]!.padStart(w[2]!)}`;
  return [line(head), ...rows.map(line)].join('\n');
}

/** Per backing directory: moved by the program ("backing_stats" map) and by the daemon. */
export interface PerBacking {
  kernel: BackingCounts[] | null;
  daemon: BackingCounts[];
  /** Policy events (a tier's promotions, a union's copy-ups and whiteouts). */
  events: Record<string, number>;
}

const human = (n: number) => (n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`);

/** One line per backing directory: reads and writes the program and the daemon made there. */
export function formatPerBacking(p: PerBacking, dirs: string[]): string {
  const rows = p.daemon.map((d, i) => {
    const k = p.kernel?.[i];
    return [String(i), dirs[i] ?? '', k ? `${k.reads} (${human(k.readBytes)})` : '-', k ? `${k.writes} (${human(k.writeBytes)})` : '-',
      `${d.reads} (${human(d.readBytes)})`, `${d.writes} (${human(d.writeBytes)})`];
  });
  const head = ['#', 'backing', 'kernel reads', 'kernel writes', 'daemon reads', 'daemon writes'];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => (i < 2 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ');
  const ev = Object.entries(p.events).map(([k, v]) => `${k} ${v}`).join(', ');
  return [line(head), ...rows.map(line), ...(ev ? [ev] : [])].join('\n');
}

/** Where a running `fuse-kfunc mount` publishes its stats: one JSON file per mountpoint. */
export const STATS_DIR = '/run/fuse-kfunc';

export function statsFileName(mountpoint: string): string {
  return `${encodeURIComponent(mountpoint)}.json`;
}

export interface StatsFile {
  mountpoint: string;
  backings: string[];
  mode: string;
  program: string | null;
  pid: number;
  /** ms since the epoch of the last write. */
  updated: number;
  stats: MountStats;
  /** Multi-backing policies: per backing directory. */
  perBacking?: PerBacking;
}
