// The overhead-when-unused run: boot order, paired ratios, the goal per row, the report,
// its arguments; the untar-grep job's table.
import test from 'ava';
import { bootOrder, overheadCells, overheadMarkdown, pairedRatios, summarize, verdict, withinGoal, type OverheadResults } from '../../src/bench/overhead.ts';
import { daemonShare, jobTable, markdown, stat } from '../../src/bench/report.ts';
import type { RawResults } from '../../src/bench/guest.ts';
import type { Measurement } from '../../src/bench/workloads.ts';

const m = (iops: number, extra: Partial<Measurement> = {}): Measurement => ({
  ops: 1000, seconds: 1, iops, mbps: 0, p50us: 1e6 / iops, p99us: 3e6 / iops, cpuMsPerKop: 10,
  daemonPerOp: 3, kernelPerOp: 0, ...extra,
});

const cfg = (name: string) => ({ name, label: '', backings: 1 });

const overhead = (): OverheadResults => ({
  started: '2026-11-25T19:00:00Z', mode: 'icount', command: 'fuse-kfunc bench --overhead --repeats 3', repeats: 3, runtime: 2,
  kernels: { patched: '6.12.117-fuse-kfunc', base: '6.12.117-fuse-kfunc-base' },
  boots: bootOrder(3).map((b) => ({ ...b, seconds: 100, exitCode: 0 })),
  configs: [cfg('native'), cfg('libfuse-c')],
  workloads: [{ name: 'stat', label: 'stat', kind: 'meta', args: ['stat'] }],
  results: {
    // patched slower by 0.5 %, 2 %, 0.2 % in the three pairs
    patched: { native: { stat: [m(1000), m(1000), m(1000)] }, 'libfuse-c': { stat: [m(1000 / 1.005), m(1000 / 1.02), m(1000 / 1.002)] } },
    base: { native: { stat: [m(1000), m(1001), m(999)] }, 'libfuse-c': { stat: [m(1000), m(1000), m(1000)] } },
  },
  errors: [],
});

test('boots alternate ABBA, one pair per repeat', (t) => {
  t.deepEqual(bootOrder(3).map((b) => `${b.side[0]}${b.repeat}`), ['p0', 'b0', 'b1', 'p1', 'p2', 'b2']);
  t.deepEqual(bootOrder(0), []);
});

test('ratios are patched / base within each repeat; holes are skipped', (t) => {
  const r = overhead();
  const xs = pairedRatios(r, 'libfuse-c', 'stat', (x) => 1 / x.iops);
  t.is(xs.length, 3);
  t.true(Math.abs(xs[1]! - 1.02) < 1e-9);
  // a failed boot leaves a null in the JSON
  (r.results.base['libfuse-c']!.stat as (Measurement | null)[])[1] = null;
  t.is(pairedRatios(r, 'libfuse-c', 'stat', (x) => 1 / x.iops).length, 2);
  t.deepEqual(pairedRatios(r, 'nope', 'stat', (x) => x.iops), []);
});

test('the goal: median within 1 % of 1', (t) => {
  t.true(withinGoal(stat([1.005, 1.02, 1.002])));
  t.false(withinGoal(stat([1.02, 1.03, 0.99])));
  t.true(withinGoal(stat([0.995])));
  t.is(withinGoal(undefined), undefined);
  t.is(verdict(stat([1.005, 1.02, 1.002])), 'yes');
  t.is(verdict(stat([0.95, 1.03, 1.05])), 'noise');
  t.is(verdict(stat([1.02, 1.03, 1.05])), 'no');
  t.is(verdict(stat([1.05])), 'no');
  const cells = overheadCells(overhead());
  const s = summarize(cells);
  t.is(s.measured, 1);
  t.is(s.met, 1);
  t.is(s.worst?.config, 'libfuse-c');
  t.true(Math.abs(s.nativeSpread! - 0.001) < 1e-9);
});

test('the overhead report carries the command, the kernels, ranges and the verdict', (t) => {
  const md = overheadMarkdown(overhead());
  t.regex(md, /Command: `fuse-kfunc bench --overhead --repeats 3`/);
  t.regex(md, /order PBBPPB/);
  t.regex(md, /\| stat \| libfuse-c \| 1\.0050 \(1\.0020–1\.0200\) \|/);
  t.regex(md, /\| stat \| native \| .* \| control \|/);
  t.regex(md, /yes \(\+0\.50 %\)/);
  t.regex(md, /On p50 .*: 1 of 1 FUSE rows within 1 %, native control spread/);
  t.regex(md, /1 of 1 FUSE rows have a median time\/op ratio within 1 %, 0 more .*, 0 differ on one side/);
  // 10 ms of CPU per 1000 ops over 1000 ops = 0.01 s: below what /proc/stat resolves
  t.regex(md, /\| stat \| libfuse-c \| 1\.0050 \(1\.0020–1\.0200\) \| [^|]+ \| – \|/);
  t.notRegex(md, /planned boots/);
  const cut = overhead();
  cut.boots = cut.boots.slice(0, 4);
  t.regex(overheadMarkdown(cut), /order PBBP \(only 4 of the 6 planned boots ran\)/);
});

test('bench --overhead arguments: daemon-only configurations, icount by default', async (t) => {
  const { parseBenchArgs } = await import('../../src/bench/index.ts');
  const f = (o: Record<string, string | true>) => new Map(Object.entries(o));
  const d = parseBenchArgs(f({ overhead: true }), '/r', []);
  t.true(d.overhead && d.icount);
  t.deepEqual(d.configs, ['native', 'userspace', 'libfuse-c', 'passthrough']);
  t.true(d.workloads.includes('stat') && !d.workloads.includes('untar-grep'));
  t.false(parseBenchArgs(f({ overhead: true, wallclock: true }), '/r', []).icount);
  t.deepEqual(parseBenchArgs(f({ overhead: true, workloads: 'untar-grep' }), '/r', []).workloads, ['untar-grep']);
  t.throws(() => parseBenchArgs(f({ overhead: true, configs: 'native,bpf' }), '/r', []), { message: /daemon-only .* drop bpf/ });
  t.throws(() => parseBenchArgs(f({ wallclock: true }), '/r', []), { message: /--wallclock only applies to --overhead/ });
  t.false(parseBenchArgs(f({}), '/r', []).overhead);
});

test('untar-grep: seconds per phase, requests, the share that reached the daemon', (t) => {
  const job = (untar: number, daemon: number | null, kernel: number | null): Measurement => {
    const phases = [{ name: 'untar', seconds: untar, cpuSeconds: untar / 2, daemon, kernel }, { name: 'grep', seconds: 1, cpuSeconds: 0.5, daemon, kernel }];
    const files = 100;
    return { ...m(1), ops: files, seconds: untar + 1, p50us: NaN, p99us: NaN, phases,
      daemonPerOp: daemon === null ? null : (2 * daemon) / files, kernelPerOp: kernel === null ? null : (2 * kernel) / files };
  };
  t.is(daemonShare(job(1, 300, 100)), 0.75);
  t.is(daemonShare(job(1, null, null)), null);
  t.is(daemonShare(job(1, 0, 0)), null);
  const raw: RawResults = {
    started: '2026-11-25T19:00:00Z', kernel: 'k', mode: 'wallclock', command: 'fuse-kfunc bench --workloads untar-grep', repeats: 2, runtime: 2,
    configs: [cfg('native'), { ...cfg('bpf'), program: true }],
    workloads: [{ name: 'untar-grep', label: 'untar and grep', kind: 'job', args: ['untar-grep'] }],
    results: { native: { 'untar-grep': [job(1, null, null), job(1, null, null)] }, bpf: { 'untar-grep': [job(3, 300, 100), job(5, 300, 100)] } },
    errors: [],
  };
  const md = markdown(raw);
  t.regex(md, /\| bpf \| 4\.00 \(3\.00–5\.00\) \| 1\.00 \(1\.00–1\.00\) \| 5\.00 \(4\.00–6\.00\) \| 2\.50 \| 2\.50 \| 600 \| 200 \| 75 % \|/);
  t.regex(md, /\| native \| 1\.00 .* \| – \| – \| – \|/);
  t.regex(jobTable(raw, 'untar-grep').join('\n'), /100 files/);
});
