// Raw measurements -> medians and ranges, ratios measured side by side in one run, the goals
// of issue 7 checked against them, a markdown report and SVG bar charts.
import type { RawResults } from './guest.ts';
import type { Measurement, Phase } from './workloads.ts';

export interface Stat {
  median: number;
  min: number;
  max: number;
  n: number;
}

export function stat(xs: number[]): Stat {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  const median = n === 0 ? NaN : n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
  return { median, min: s[0] ?? NaN, max: s[n - 1] ?? NaN, n };
}

type Metric = keyof Measurement;

export function metric(raw: RawResults, config: string, workload: string, m: Metric): Stat | undefined {
  const runs = raw.results[config]?.[workload];
  if (!runs?.length) return undefined;
  const xs = runs.map((r) => r[m]).filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
  return xs.length ? stat(xs) : undefined;
}

/** Ratio of medians, a / b. */
export function ratio(raw: RawResults, a: string, b: string, workload: string, m: Metric): number | undefined {
  const x = metric(raw, a, workload, m);
  const y = metric(raw, b, workload, m);
  return x && y && y.median > 0 ? x.median / y.median : undefined;
}

export interface Goal {
  text: string;
  value: number | undefined;
  ok: boolean | undefined;
  how: string;
}

/** The goals of issue 7, against this run's ratios (undefined: not measured). */
export function goals(raw: RawResults): Goal[] {
  const g = (text: string, value: number | undefined, ok: (v: number) => boolean, how: string): Goal =>
    ({ text, value, ok: value === undefined ? undefined : ok(value), how });
  const rr = 'randread4k-direct';
  return [
    g('BPF 4 KiB direct read p50 <= 1.3x native', ratio(raw, 'bpf', 'native', rr, 'p50us'), (v) => v <= 1.3, 'p50(bpf) / p50(native)'),
    g('BPF 4 KiB direct read p50 <= 1.1x upstream passthrough', ratio(raw, 'bpf', 'passthrough', rr, 'p50us'), (v) => v <= 1.1, 'p50(bpf) / p50(passthrough)'),
    g('BPF 4 KiB direct read >= 5x faster than the C daemon', ratio(raw, 'libfuse-c', 'bpf', rr, 'p50us'), (v) => v >= 5, 'p50(libfuse-c) / p50(bpf)'),
    g('BPF stat <= 1.5x native', ratio(raw, 'bpf', 'native', 'stat', 'p50us'), (v) => v <= 1.5, 'p50(bpf) / p50(native)'),
    g('BPF open+close <= 1.5x native', ratio(raw, 'bpf', 'native', 'open-close', 'p50us'), (v) => v <= 1.5, 'p50(bpf) / p50(native)'),
    g('BPF stat >= 5x faster than the C daemon', ratio(raw, 'libfuse-c', 'bpf', 'stat', 'p50us'), (v) => v >= 5, 'p50(libfuse-c) / p50(bpf)'),
    g('stripe over 2: 128 KiB sequential read >= 0.9x native throughput', ratio(raw, 'stripe2', 'native', 'seqread128k-direct', 'mbps'), (v) => v >= 0.9, 'MB/s(stripe2) / MB/s(native)'),
    // Issue 17: the data path at passthrough speed; one backing passed through by the program.
    g('passed through by the program: 4 KiB direct read p50 <= 1.15x native', ratio(raw, 'tree-pt', 'native', rr, 'p50us'), (v) => v <= 1.15, 'p50(tree-pt) / p50(native)'),
    g('passed through by the program: 4 KiB direct read p50 <= 1.1x upstream passthrough', ratio(raw, 'tree-pt', 'passthrough', rr, 'p50us'), (v) => v <= 1.1, 'p50(tree-pt) / p50(passthrough)'),
    g('passed through by the program: 4 KiB buffered read p50 <= 1.2x native', ratio(raw, 'tree-pt', 'native', 'randread4k-buffered', 'p50us'), (v) => v <= 1.2, 'p50(tree-pt) / p50(native)'),
    g('passed through by the program: 4 KiB direct write p50 <= 1.2x native', ratio(raw, 'tree-pt', 'native', 'randwrite4k-direct', 'p50us'), (v) => v <= 1.2, 'p50(tree-pt) / p50(native)'),
    g('stripe over 2: 128 KiB sequential read >= 0.97x native throughput', ratio(raw, 'stripe2', 'native', 'seqread128k-direct', 'mbps'), (v) => v >= 0.97, 'MB/s(stripe2) / MB/s(native)'),
    g('stripe over 2: 4 KiB direct read p50 <= 1.2x native', ratio(raw, 'stripe2', 'native', rr, 'p50us'), (v) => v <= 1.2, 'p50(stripe2) / p50(native)'),
    g('tree, zero timeouts: stat <= 1.5x native', ratio(raw, 'tree', 'native', 'stat', 'p50us'), (v) => v <= 1.5, 'p50(tree) / p50(native)'),
    g('tree, timeouts the program chooses (1 s): stat <= 1.1x native', ratio(raw, 'tree-cached', 'native', 'stat', 'p50us'), (v) => v <= 1.1, 'p50(tree-cached) / p50(native)'),
    // Issue 20: the TypeScript daemon within 2x of a C libfuse daemon.
    g('TypeScript daemon: 4 KiB direct read p50 <= 2x the C daemon', ratio(raw, 'userspace', 'libfuse-c', rr, 'p50us'), (v) => v <= 2, 'p50(userspace) / p50(libfuse-c)'),
    g('TypeScript daemon: stat p50 <= 2x the C daemon', ratio(raw, 'userspace', 'libfuse-c', 'stat', 'p50us'), (v) => v <= 2, 'p50(userspace) / p50(libfuse-c)'),
    g('TypeScript daemon: 4 KiB direct read, 2 jobs, p50 <= 1.5x the C daemon', ratio(raw, 'userspace', 'libfuse-c', 'randread4k-direct-2j', 'p50us'), (v) => v <= 1.5, 'p50(userspace) / p50(libfuse-c)'),
    // Under -icount the job's elapsed time is mostly idle jumps (native 0.6-3.9 s over three
    // repeats): there the row compares the guest CPU the job took (CPU ms per file, the
    // same files for both), and elapsed seconds only in wall-clock runs.
    /icount/.test(raw.mode)
      ? g('TypeScript daemon: untar + grep <= 2x the C daemon (guest CPU; elapsed under -icount is idle jumps)', ratio(raw, 'userspace', 'libfuse-c', 'untar-grep', 'cpuMsPerKop'), (v) => v <= 2, 'CPU(userspace) / CPU(libfuse-c)')
      : g('TypeScript daemon: untar + grep <= 2x the C daemon', ratio(raw, 'userspace', 'libfuse-c', 'untar-grep', 'seconds'), (v) => v <= 2, 's(userspace) / s(libfuse-c)'),
  ];
}

export const fmt = (x: number | undefined | null, d = 1) => (x === undefined || x === null || !Number.isFinite(x) ? '–' : x >= 100 ? x.toFixed(0) : x.toFixed(d));
export const range = (s: Stat | undefined, d = 1) => (!s ? '–' : s.n > 1 ? `${fmt(s.median, d)} (${fmt(s.min, d)}–${fmt(s.max, d)})` : fmt(s.median, d));

export function markdown(raw: RawResults): string {
  const L: string[] = [];
  L.push(`### ${raw.mode}: ${raw.started.slice(0, 16).replace('T', ' ')} UTC, kernel ${raw.kernel || '?'}`);
  L.push('');
  L.push(`Command: \`${raw.command}\`. ${raw.repeats} repeat(s) of every configuration (interleaved), fio jobs ${raw.runtime} s, no ramp; medians with (min–max) over the repeats.`);
  L.push('');
  for (const w of raw.workloads) {
    L.push(`#### ${w.name}: ${w.label}`);
    L.push('');
    if (w.kind === 'job') {
      L.push(...jobTable(raw, w.name), '');
      continue;
    }
    const isFio = w.kind === 'fio';
    L.push(`| config | p50 µs | p99 µs | ${isFio ? (/128k/.test(w.name) ? 'MB/s' : 'IOPS') : 'ops/s'} | × native p50 | CPU ms / 1k ops | daemon req / op | BPF req / op |`);
    L.push('|---|---|---|---|---|---|---|---|');
    for (const c of raw.configs) {
      if (!raw.results[c.name]?.[w.name]) continue;
      const thr = /128k/.test(w.name) ? metric(raw, c.name, w.name, 'mbps') : metric(raw, c.name, w.name, 'iops');
      const program = !!c.program;
      L.push(`| ${c.name} | ${range(metric(raw, c.name, w.name, 'p50us'))} | ${range(metric(raw, c.name, w.name, 'p99us'))} | ${range(thr, 0)} | ${fmt(ratio(raw, c.name, 'native', w.name, 'p50us'), 2)} | ${fmt(metric(raw, c.name, w.name, 'cpuMsPerKop')?.median)} | ${fmt(metric(raw, c.name, w.name, 'daemonPerOp')?.median, 2)} | ${program ? fmt(metric(raw, c.name, w.name, 'kernelPerOp')?.median, 2) : '–'} |`);
    }
    L.push('');
    L.push(...profileTable(raw, w.name));
  }
  // A profiled run's latencies include the sampling: no goal is judged on them.
  if (!raw.profile) {
    L.push('#### Goals (ratios of medians in this run)');
    L.push('');
    L.push('| goal | measured | met |');
    L.push('|---|---|---|');
    for (const g of goals(raw)) L.push(`| ${g.text} | ${fmt(g.value, 2)} (${g.how}) | ${g.ok === undefined ? 'not measured' : g.ok ? 'yes' : '**no**'} |`);
    L.push('');
  }
  L.push(...errorLines(raw.errors));
  return L.join('\n');
}

/**
 * `bench --profile`: self time per operation of the functions that take the most in any
 * configuration (first repeat), one column per configuration, and what the rows leave out.
 */
export function profileTable(raw: RawResults, workload: string, rows = 16): string[] {
  const cols = raw.configs.filter((c) => raw.results[c.name]?.[workload]?.[0]?.profile);
  if (!cols.length) return [];
  // Self time per operation: a function's share of the samples times the operation's mean
  // time (fio: 1 / IOPS, one job; metaloop: its mean), the workload being always busy.
  const prof = new Map(cols.map((c) => {
    const m = raw.results[c.name]![workload]![0]!;
    return [c.name, m.profile!.map((e) => ({ ...e, usPerOp: (e.share / 100) * (1e6 / m.iops) }))];
  }));
  const samples = cols.map((c) => raw.results[c.name]![workload]![0]!.profileSamples ?? NaN);
  const key = (e: { sym: string; kernel: boolean }) => `${e.kernel ? '' : '(user) '}${e.sym}`;
  const top = new Map<string, number>();
  for (const p of prof.values()) for (const e of p) top.set(key(e), Math.max(top.get(key(e)) ?? 0, e.usPerOp));
  const names = [...top.entries()].sort((a, b) => b[1] - a[1]).slice(0, rows).map(([n]) => n);
  const cell = (c: string, n: string) => {
    const e = prof.get(c)!.find((x) => key(x) === n);
    return e ? fmt(e.usPerOp, 2) : '–';
  };
  const total = (c: string) => prof.get(c)!.reduce((a, e) => a + e.usPerOp, 0);
  const shown = (c: string) => prof.get(c)!.filter((e) => names.includes(key(e))).reduce((a, e) => a + e.usPerOp, 0);
  const L = [
    `Where the time goes (\`--profile\`: perf cpu-clock samples of the workload's context, at the guest's tick; self time per operation in µs = share of the samples × mean time per operation; functions with ≥ 0.5 % of a configuration's samples; first repeat; ${fmt(Math.min(...samples), 0)}–${fmt(Math.max(...samples), 0)} samples per configuration, so a share is ± a few % of itself and more for small ones):`,
    '',
    `| function | ${cols.map((c) => c.name).join(' | ')} |`,
    `|---|${cols.map(() => '---').join('|')}|`,
    ...names.map((n) => `| ${n} | ${cols.map((c) => cell(c.name, n)).join(' | ')} |`),
    `| *other functions ≥ 0.5 %* | ${cols.map((c) => fmt(total(c.name) - shown(c.name), 2)).join(' | ')} |`,
    `| *sum of the above* | ${cols.map((c) => fmt(total(c.name), 2)).join(' | ')} |`,
    `| *mean time per operation* | ${cols.map((c) => fmt(1e6 / raw.results[c.name]![workload]![0]!.iops, 2)).join(' | ')} |`,
    '',
  ];
  return L;
}

/** The run's errors, first line of each, as a markdown list (nothing when there were none). */
export function errorLines(errors: string[]): string[] {
  return errors.length ? ['Errors in this run:', '', ...errors.map((e) => `- ${e.split('\n')[0]}`), ''] : [];
}

/** Median of one phase's field over the repeats. */
function phaseStat(raw: RawResults, config: string, workload: string, phase: string, f: (p: Phase) => number | null): Stat | undefined {
  const xs = (raw.results[config]?.[workload] ?? []).map((m) => m.phases?.find((p) => p.name === phase))
    .map((p) => (p ? f(p) : null)).filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
  return xs.length ? stat(xs) : undefined;
}

/** Share of the FUSE requests that reached the daemon (BPF-served ones are the rest). */
export function daemonShare(m: Measurement): number | null {
  if (m.daemonPerOp === null) return null;
  const k = m.kernelPerOp ?? 0;
  const all = m.daemonPerOp + k;
  return all > 0 ? m.daemonPerOp / all : null;
}

/** A job's table: seconds per phase, CPU, requests, the share that reached userspace. */
export function jobTable(raw: RawResults, workload: string): string[] {
  const L = ['| config | untar s | grep s | total s | × native | CPU s | daemon requests | BPF-served requests | share at the daemon |',
    '|---|---|---|---|---|---|---|---|---|'];
  for (const c of raw.configs) {
    const runs = raw.results[c.name]?.[workload];
    if (!runs?.length) continue;
    const total = metric(raw, c.name, workload, 'seconds');
    const nat = metric(raw, 'native', workload, 'seconds');
    const cpu = stat(runs.map((m) => (m.phases ?? []).reduce((a, p) => a + p.cpuSeconds, 0)));
    const req = (f: (p: Phase) => number | null) => {
      const xs = runs.map((m) => (m.phases ?? []).reduce<number | null>((a, p) => (a === null || f(p) === null ? null : a + f(p)!), 0))
        .filter((x): x is number => x !== null);
      return xs.length ? stat(xs) : undefined;
    };
    const shares = runs.map(daemonShare).filter((x): x is number => x !== null);
    const share = shares.length ? stat(shares) : undefined;
    L.push(`| ${c.name} | ${range(phaseStat(raw, c.name, workload, 'untar', (p) => p.seconds), 2)} | ${range(phaseStat(raw, c.name, workload, 'grep', (p) => p.seconds), 2)} | ` +
      `${range(total, 2)} | ${fmt(total && nat ? total.median / nat.median : undefined, 2)} | ${fmt(cpu.median, 2)} | ` +
      `${c.name === 'native' || c.name === 'libfuse-c' ? '–' : fmt(req((p) => p.daemon)?.median, 0)} | ${c.program ? fmt(req((p) => p.kernel)?.median, 0) : '–'} | ` +
      `${share ? `${(share.median * 100).toFixed(share.median < 0.1 ? 1 : 0)} %` : '–'} |`);
  }
  const files = raw.results.native?.[workload]?.[0]?.ops ?? Object.values(raw.results).find((r) => r[workload])?.[workload]?.[0]?.ops;
  L.push('', `${files ?? '?'} files. Requests are FUSE requests (what \`fuse-kfunc stats\` counts); upstream passthrough's READ/WRITE ` +
    'bypass the request path and appear in neither column. The share is daemon / (daemon + BPF-served).');
  return L;
}

/** A horizontal bar chart of one metric per configuration (median, with the range as a whisker). */
export function svgBars(raw: RawResults, workload: string, m: Metric, title: string, unit: string): string {
  const rows = raw.configs.map((c) => ({ name: c.name, program: !!c.program, s: metric(raw, c.name, workload, m) })).filter((r) => r.s);
  const W = 640, left = 110, right = 90, bar = 18, gap = 8, top = 34;
  const H = top + rows.length * (bar + gap) + 10;
  const max = Math.max(...rows.map((r) => r.s!.max), 1e-9);
  const x = (v: number) => left + ((W - left - right) * v) / max;
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const out = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<text x="8" y="18" font-size="14" font-weight="bold">${esc(title)}</text>`];
  rows.forEach((r, i) => {
    const y = top + i * (bar + gap);
    const color = r.name === 'native' ? '#888' : r.program ? '#2a7' : '#47c';
    out.push(`<text x="${left - 6}" y="${y + bar - 5}" text-anchor="end">${esc(r.name)}</text>`);
    out.push(`<rect x="${left}" y="${y}" width="${Math.max(1, x(r.s!.median) - left).toFixed(1)}" height="${bar}" fill="${color}"/>`);
    if (r.s!.n > 1) out.push(`<line x1="${x(r.s!.min).toFixed(1)}" x2="${x(r.s!.max).toFixed(1)}" y1="${y + bar / 2}" y2="${y + bar / 2}" stroke="#000"/>`);
    out.push(`<text x="${(x(r.s!.max) + 4).toFixed(1)}" y="${y + bar - 5}">${fmt(r.s!.median)} ${esc(unit)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
