// "Overhead when unused": the daemon-only configurations on the patched kernel (no program
// attached anywhere, so the hook's static key is off) against the unpatched base kernel
// built with the same config. Boots alternate between the two kernels; each repeat is one
// boot of each, adjacent, and the figure is the ratio patched / base within that pair, so
// a drift of the host (or of anything else between boots) hits both sides of every ratio.
import type { Config } from './configs.ts';
import type { Measurement, Workload } from './workloads.ts';
import { errorLines, fmt, stat, type Stat } from './report.ts';

export type Side = 'patched' | 'base';

export interface OverheadResults {
  started: string;
  mode: string;
  command: string;
  repeats: number;
  runtime: number;
  /** Release strings as each guest reported them (os.release()). */
  kernels: Record<Side, string>;
  /** The boots in the order they ran. */
  boots: { side: Side; repeat: number; seconds: number; exitCode: number }[];
  configs: Config[];
  workloads: Workload[];
  /** results[side][config][workload][repeat] */
  results: Record<Side, Record<string, Record<string, Measurement[]>>>;
  errors: string[];
}

/**
 * Boot order: an ABBA sequence (patched, base, base, patched, ...). Each repeat is still one
 * adjacent pair, and a steady drift over the run favours neither kernel.
 */
export function bootOrder(repeats: number): { side: Side; repeat: number }[] {
  const out: { side: Side; repeat: number }[] = [];
  for (let r = 0; r < repeats; r++) {
    const pair: Side[] = r % 2 === 0 ? ['patched', 'base'] : ['base', 'patched'];
    for (const side of pair) out.push({ side, repeat: r });
  }
  return out;
}

export const DEFAULT_OVERHEAD_WORKLOADS = ['randread4k-direct', 'randwrite4k-direct', 'seqread128k-direct', 'stat', 'open-close', 'create-unlink', 'readdir-1k'];

/** Time-like quantities of a measurement: larger is slower on both. */
export const timePerOp = (m: Measurement) => (m.iops > 0 ? 1 / m.iops : NaN);

/** Per repeat, patched / base of f; only repeats where both sides measured. */
export function pairedRatios(raw: OverheadResults, config: string, workload: string, f: (m: Measurement) => number): number[] {
  const p = raw.results.patched[config]?.[workload] ?? [];
  const b = raw.results.base[config]?.[workload] ?? [];
  const out: number[] = [];
  for (let i = 0; i < Math.min(p.length, b.length); i++) {
    // A repeat one side lacks (a failed boot or workload) is a hole (null in the JSON).
    if (!p[i] || !b[i]) continue;
    const x = f(p[i]!);
    const y = f(b[i]!);
    if (Number.isFinite(x) && Number.isFinite(y) && y > 0) out.push(x / y);
  }
  return out;
}

/**
 * CPU per operation, only where the span had enough CPU time to measure: /proc/stat
 * counts in 10 ms jiffies, so a loop of 0.05 s reads as 0, 10 or 20 ms.
 */
export const MIN_CPU_SECONDS = 0.5;
const cpuOf = (m: Measurement) => ((m.cpuMsPerKop * m.ops) / 1e6 >= MIN_CPU_SECONDS ? m.cpuMsPerKop : NaN);

export interface OverheadCell {
  config: string;
  workload: string;
  /** patched / base, time per operation (1 / ops per second), per repeat. */
  time?: Stat;
  /** patched / base, p50 latency. */
  p50?: Stat;
  /** patched / base, guest CPU per operation. */
  cpu?: Stat;
}

export function overheadCells(raw: OverheadResults): OverheadCell[] {
  const cells: OverheadCell[] = [];
  const s = (xs: number[]) => (xs.length ? stat(xs) : undefined);
  for (const w of raw.workloads) {
    for (const c of raw.configs) {
      cells.push({
        config: c.name, workload: w.name,
        time: s(pairedRatios(raw, c.name, w.name, timePerOp)),
        p50: s(pairedRatios(raw, c.name, w.name, (m) => m.p50us)),
        cpu: s(pairedRatios(raw, c.name, w.name, cpuOf)),
      });
    }
  }
  return cells;
}

export const OVERHEAD_LIMIT = 0.01;

/** The goal per cell: the median paired time ratio within 1 % of 1. */
export function withinGoal(s: Stat | undefined): boolean | undefined {
  return s ? Math.abs(s.median - 1) <= OVERHEAD_LIMIT : undefined;
}

/**
 * Beyond the goal, is the difference real? "noise" when the paired ratios fall on both
 * sides of 1 (some repeats faster on the patched kernel, some slower).
 */
export function verdict(s: Stat | undefined): 'yes' | 'noise' | 'no' | undefined {
  if (!s) return undefined;
  if (withinGoal(s)) return 'yes';
  return s.n > 1 && s.min <= 1 && s.max >= 1 ? 'noise' : 'no';
}

const pct = (x: number) => `${x >= 1 ? '+' : '−'}${Math.abs((x - 1) * 100).toFixed(2)} %`;
const ratioCell = (s: Stat | undefined) => (!s ? '–' : s.n > 1 ? `${s.median.toFixed(4)} (${s.min.toFixed(4)}–${s.max.toFixed(4)})` : s.median.toFixed(4));

export interface OverheadSummary {
  measured: number;
  met: number;
  /** Rows off by more than 1 % whose repeats fall on both sides of 1. */
  noise: number;
  /** The native rows: no FUSE at all, so their spread is the noise floor of a boot pair. */
  nativeSpread: number | undefined;
  /** The same on p50, which one slow operation in a loop does not move (the mean does). */
  nativeSpreadP50: number | undefined;
  /** FUSE rows whose median p50 ratio is within 1 %. */
  metP50: number;
  worst?: OverheadCell;
}

export function summarize(cells: OverheadCell[]): OverheadSummary {
  const fuse = cells.filter((c) => c.config !== 'native' && c.time);
  const nat = cells.filter((c) => c.config === 'native' && c.time);
  const dev = (c: OverheadCell) => Math.abs(c.time!.median - 1);
  const worst = [...fuse].sort((a, b) => dev(b) - dev(a))[0];
  return {
    measured: fuse.length,
    met: fuse.filter((c) => withinGoal(c.time)).length,
    noise: fuse.filter((c) => verdict(c.time) === 'noise').length,
    nativeSpread: nat.length ? Math.max(...nat.map((c) => Math.max(Math.abs(c.time!.max - 1), Math.abs(c.time!.min - 1)))) : undefined,
    nativeSpreadP50: nat.some((c) => c.p50) ? Math.max(...nat.filter((c) => c.p50).map((c) => Math.max(Math.abs(c.p50!.max - 1), Math.abs(c.p50!.min - 1)))) : undefined,
    metP50: fuse.filter((c) => withinGoal(c.p50)).length,
    worst,
  };
}

export function overheadMarkdown(raw: OverheadResults): string {
  const L: string[] = [];
  const cells = overheadCells(raw);
  L.push(`### overhead when unused (${raw.mode}): ${raw.started.slice(0, 16).replace('T', ' ')} UTC`);
  L.push('');
  L.push(`Command: \`${raw.command}\`. Kernels: patched \`${raw.kernels.patched || '?'}\` (no program attached: the hook's static key is off), ` +
    `unpatched base \`${raw.kernels.base || '?'}\` (same tinyconfig + kernel-patch/config.fragment). ` +
    `${raw.repeats} repeat(s), each one boot of each kernel, adjacent, in the order ${raw.boots.map((b) => b.side[0]!.toUpperCase()).join('')} ` +
    `${raw.boots.length < 2 * raw.repeats ? `(only ${raw.boots.length} of the ${2 * raw.repeats} planned boots ran) ` : ''}` +
    `(P patched, B base); fio jobs ${raw.runtime} s. Each figure is patched ÷ base **within a repeat's pair of boots**, then the median ` +
    '(min–max) over the repeats; > 1 means the patched kernel is slower. "time/op" is 1 / (IOPS or ops/s); CPU/op only where a ' +
    `span had ≥ ${MIN_CPU_SECONDS} s of CPU (/proc/stat counts 10 ms jiffies); the native rows do not touch FUSE and show the noise of a pair of boots.`);
  L.push('');
  L.push('| workload | config | time/op patched ÷ base | p50 patched ÷ base | CPU/op patched ÷ base | within 1 % |');
  L.push('|---|---|---|---|---|---|');
  for (const c of cells) {
    if (!c.time && !c.p50) continue;
    const v = verdict(c.time);
    const said = { yes: 'yes', noise: 'no, within noise', no: '**no**' };
    L.push(`| ${c.workload} | ${c.config} | ${ratioCell(c.time)} | ${ratioCell(c.p50)} | ${ratioCell(c.cpu)} | ` +
      `${c.config === 'native' ? 'control' : v === undefined ? '–' : `${said[v]} (${pct(c.time!.median)})`} |`);
  }
  L.push('');
  const s = summarize(cells);
  L.push(`Goal "unused hook: ≤ 1 % difference from the unpatched kernel": ${s.met} of ${s.measured} FUSE rows have a median time/op ratio within 1 %, ` +
    `${s.noise} more differ by more than 1 % with repeats on both sides of 1 (within noise), ${s.measured - s.met - s.noise} differ on one side` +
    `${s.worst ? `; the largest deviation is ${s.worst.workload} / ${s.worst.config}, ${pct(s.worst.time!.median)}` : ''}` +
    `${s.nativeSpread !== undefined ? `; the native control rows spread up to ${fmt(s.nativeSpread * 100, 2)} % from 1` : ''}. ` +
    `On p50 (one slow operation moves a loop's mean, not its median): ${s.metP50} of ${s.measured} FUSE rows within 1 %` +
    `${s.nativeSpreadP50 !== undefined ? `, native control spread ${fmt(s.nativeSpreadP50 * 100, 2)} %` : ''}.`);
  L.push('');
  L.push(...errorLines(raw.errors));
  return L.join('\n');
}
