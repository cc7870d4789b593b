// The benchmark report: medians and ranges, ratios of medians, the goals, the markdown and
// SVG, from a hand-made set of measurements.
import test from 'ava';
import { goals, markdown, metric, ratio, stat, svgBars } from '../../src/bench/report.ts';
import type { RawResults } from '../../src/bench/guest.ts';
import { parsePerfReport, type Measurement } from '../../src/bench/workloads.ts';

const m = (p50us: number, extra: Partial<Measurement> = {}): Measurement => ({
  ops: 1000, seconds: 1, iops: 1e6 / p50us, mbps: 0, p50us, p99us: p50us * 3, cpuMsPerKop: 10,
  daemonPerOp: 0, kernelPerOp: 1, ...extra,
});

const raw: RawResults = {
  started: '2026-11-25T16:00:00Z', kernel: 'test', mode: 'wallclock', command: 'fuse-kfunc bench --quick',
  repeats: 3, runtime: 2,
  configs: [{ name: 'native', label: '', backings: 1 }, { name: 'passthrough', label: '', backings: 1 },
    { name: 'bpf', label: '', backings: 1 }, { name: 'libfuse-c', label: '', backings: 1 }],
  workloads: [{ name: 'randread4k-direct', label: '4k', kind: 'fio', args: [] }],
  results: {
    native: { 'randread4k-direct': [m(10), m(12), m(11)] },
    passthrough: { 'randread4k-direct': [m(11), m(13), m(12)] },
    bpf: { 'randread4k-direct': [m(20), m(22), m(100)] },
    'libfuse-c': { 'randread4k-direct': [m(300)] },
  },
  errors: [],
};

test('median and range', (t) => {
  t.deepEqual(stat([3, 1, 2]), { median: 2, min: 1, max: 3, n: 3 });
  t.is(stat([1, 2, 3, 10]).median, 2.5);
  t.deepEqual(metric(raw, 'bpf', 'randread4k-direct', 'p50us'), { median: 22, min: 20, max: 100, n: 3 });
  t.is(metric(raw, 'bpf', 'stat', 'p50us'), undefined);
});

test('ratios are of medians (an outlier repeat does not move them)', (t) => {
  t.is(ratio(raw, 'bpf', 'native', 'randread4k-direct', 'p50us'), 2);
  t.is(ratio(raw, 'bpf', 'nope', 'randread4k-direct', 'p50us'), undefined);
});

test('goals: met, missed, not measured', (t) => {
  const g = goals(raw);
  const by = (s: string) => g.find((x) => x.text.startsWith(s))!;
  t.false(by('BPF 4 KiB direct read p50 <= 1.3x native').ok);
  t.is(by('BPF 4 KiB direct read p50 <= 1.3x native').value, 2);
  t.true(by('BPF 4 KiB direct read >= 5x faster than the C daemon').ok);
  t.is(by('BPF stat <= 1.5x native').ok, undefined);
});

test('the untar goal: elapsed seconds in wall-clock runs, guest CPU under -icount (whose elapsed time is idle jumps)', (t) => {
  // Elapsed says 1.2x, CPU says 3x: only the wall-clock run may judge on elapsed time.
  const untar = (seconds: number, cpuMsPerKop: number) => m(0, { seconds, cpuMsPerKop, p50us: null as unknown as number });
  const results = { userspace: { 'untar-grep': [untar(1.2, 3000)] }, 'libfuse-c': { 'untar-grep': [untar(1, 1000)] } };
  const by = (r: RawResults) => goals(r).find((x) => x.text.startsWith('TypeScript daemon: untar + grep'))!;
  const wall = by({ ...raw, results });
  t.true(wall.ok);
  t.is(wall.value, 1.2);
  const icount = by({ ...raw, mode: 'icount', results });
  t.false(icount.ok);
  t.is(icount.value, 3);
  t.regex(icount.how, /CPU/);
});

test('markdown and SVG carry the figures and the command', (t) => {
  const md = markdown(raw);
  t.regex(md, /Command: `fuse-kfunc bench --quick`/);
  t.regex(md, /\| bpf \| 22\.0 \(20\.0–100\) \|/);
  t.regex(md, /\| BPF 4 KiB direct read p50 <= 1\.3x native \| 2\.00 .* \| \*\*no\*\* \|/);
  t.regex(md, /\| BPF stat <= 1\.5x native \| – .* \| not measured \|/);
  const svg = svgBars(raw, 'randread4k-direct', 'p50us', 'p50 <latency>', 'µs');
  t.regex(svg, /^<svg /);
  t.regex(svg, /p50 &lt;latency>/);
  t.is((svg.match(/<rect /g) ?? []).length, 4);
});

test('bench arguments: defaults, --quick, subsets, clear errors', async (t) => {
  const { parseBenchArgs } = await import('../../src/bench/index.ts');
  const f = (o: Record<string, string | true>) => new Map(Object.entries(o));
  const d = parseBenchArgs(f({}), '/r', []);
  t.is(d.repeats, 3);
  t.is(d.runtime, 4);
  t.true(d.configs.includes('libfuse-c') && d.workloads.includes('stat'));
  const q = parseBenchArgs(f({ quick: true, configs: 'native,bpf' }), '/r', []);
  t.deepEqual([q.repeats, q.runtime, q.configs], [1, 2, ['native', 'bpf']]);
  t.throws(() => parseBenchArgs(f({ configs: 'native,zfs' }), '/r', []), { message: /unknown configuration "zfs" \(choose from native, / });
  t.throws(() => parseBenchArgs(f({ repeats: '0' }), '/r', []), { message: /--repeats wants a whole number >= 1/ });
});

test('bench --profile: perf report output becomes shares of the samples', (t) => {
  const text = [
    '# Samples: 221K of event \'cpu-clock\'',
    '# Event count (approx.): 2000000000',
    '#',
    '# Overhead  Symbol',
    '#',
    '    50.00%  [k] fuse_simple_request',
    '     1.50%  [.] 0x00000000004f2a10',
    '',
  ].join('\n');
  const { samples, entries: p } = parsePerfReport(text);
  t.is(samples, 221000);
  t.deepEqual(p.map((e) => e.sym), ['fuse_simple_request', '0x00000000004f2a10']);
  t.true(p[0]!.kernel);
  t.false(p[1]!.kernel);
  t.is(p[0]!.share, 50);
  t.is(p[1]!.share, 1.5);
  t.throws(() => parsePerfReport('nothing'), { message: /no sample count/ });
  t.deepEqual(parsePerfReport('# To display the perf.data header info, please use --header/--header-only options.\n#\n'), { samples: 0, entries: [] });
});
