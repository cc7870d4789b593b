// `fuse-kfunc selftest`: the series' kernel selftests (kselftest_harness's fuse_bpf_test)
// alone, in one VM boot. The test list comes from the build's own binary run on the host
// (`-l` only prints, it touches no FUSE), so names and filters are checked, and a wrong one
// refused, before anything boots; the guest then runs `fuse_bpf_test` with one `-t` (or
// `-r`) per selected test, its TAP streaming through.
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { build, DEBUG_VARIANT, type Artifacts } from '../kernel/build.ts';
import { cacheDir } from '../util/paths.ts';
import { fmtDuration } from '../util/progress.ts';
import { chooseAccel } from '../vm/accel.ts';
import { printFailure, runVm, shellQuote, type VmResult } from '../vm/qemu.ts';
import { DEBUG_MEM_MB } from './debug-kernel.ts';
import { fromTap } from './suite.ts';
import { countTap } from './tap.ts';

export const SELFTEST_BIN = 'fuse_bpf_test';

/** One test as the harness runs it; `name` is what its TAP lines and `-r` use. */
export interface SelftestEntry {
  fixture: string;
  /** '' for a fixture without FIXTURE_VARIANTs. */
  variant: string;
  test: string;
  /** fixture.test, or fixture.variant.test */
  name: string;
}

/** A bad test name or filter: the CLI reports it as a usage error, before any boot. */
export class SelectionError extends Error {
  constructor(msg: string) { super(msg); this.name = 'SelectionError'; }
}

const fullName = (fixture: string, variant: string, test: string) => `${fixture}${variant ? `.${variant}` : ''}.${test}`;

/**
 * The harness's `-l` listing (on stderr, exit 4), kselftest_harness.h as of 6.12: a header
 * `# FIXTURE  VARIANT  TEST`, then per fixture rows `printf("%-20s %-25s %s\n", fixture,
 * variant, test)` with the fixture name on its first row only, variants and tests zipped
 * row by row (not crossed: the harness runs every test under every variant), and a rule of
 * dashes between fixtures. Names wider than their column push the later columns right.
 * Lines before the header, or with anything but identifiers, are not rows.
 */
export function parseTestList(text: string): SelftestEntry[] {
  const fixtures: { name: string; variants: string[]; tests: string[] }[] = [];
  let cur: (typeof fixtures)[number] | undefined;
  let header = false;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '').replace(/\s+$/, '');
    // Nothing before the header counts (a usage message is no listing); after it, every
    // name is a C identifier.
    if (/^# FIXTURE\s+VARIANT\s+TEST$/.test(line)) { header = true; continue; }
    if (!header || !line || line.startsWith('#') || /^-{10,}$/.test(line) || !/^[\w\s]+$/.test(line)) continue;
    let rest = line;
    let fixtureWidth = 20;
    if (!/^\s/.test(line)) {
      const name = /^\S+/.exec(line)![0];
      cur = { name, variants: [], tests: [] };
      fixtures.push(cur);
      fixtureWidth = Math.max(20, name.length);
      rest = ' '.repeat(name.length) + line.slice(name.length);
    }
    if (!cur) continue;
    // Columns: fixture (>= 20 wide), a space, variant (>= 25 wide), a space, test.
    const tokens = [...rest.matchAll(/\S+/g)].map((m) => ({ text: m[0], at: m.index! }));
    if (tokens.length >= 2) {
      cur.variants.push(tokens[0].text);
      cur.tests.push(tokens[tokens.length - 1].text);
    } else if (tokens.length === 1) {
      const testColumn = fixtureWidth + 1 + 25 + 1;
      if (tokens[0].at >= testColumn) cur.tests.push(tokens[0].text);
      else cur.variants.push(tokens[0].text);
    }
  }
  const out: SelftestEntry[] = [];
  for (const f of fixtures) {
    for (const variant of f.variants.length ? f.variants : ['']) {
      for (const test of f.tests) out.push({ fixture: f.name, variant, test, name: fullName(f.name, variant, test) });
    }
  }
  return out;
}

/** `*` any run of characters, `?` one; the whole name must match. */
export function globToRegExp(glob: string): RegExp {
  const body = glob.split('').map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[\\^$.|+()[\]{}]/g, '\\$&'))).join('');
  return new RegExp(`^${body}$`);
}

const isGlob = (p: string) => /[*?]/.test(p);

/**
 * Does one --filter pattern select the test? A glob must match the whole name, with or
 * without its fixture (`fbt.ns_*` and `ns_*` both work); anything else is a substring of
 * the full name (`ns_large`, `fbt.union`, `global.`).
 */
export function filterMatches(pattern: string, e: SelftestEntry): boolean {
  if (isGlob(pattern)) {
    const re = globToRegExp(pattern);
    return re.test(e.name) || re.test(e.test);
  }
  return e.name.includes(pattern);
}

export interface Selection {
  /** Test names, with or without the fixture: `fbt.read_gap_zeroed` or `read_gap_zeroed`. */
  names?: string[];
  /** Comma-separated patterns: substrings, or globs with `*`. */
  filter?: string;
}

/** The tests to run, in the harness's order; all of them when nothing narrows it. */
export function resolveSelection(all: SelftestEntry[], s: Selection): SelftestEntry[] {
  const names = s.names ?? [];
  const patterns = s.filter === undefined ? [] : s.filter.split(',').map((p) => p.trim()).filter(Boolean);
  if (s.filter !== undefined && !patterns.length) throw new SelectionError('--filter wants a pattern (a substring, or a glob with *)');
  if (!names.length && !patterns.length) return all;
  const chosen = new Set<SelftestEntry>();
  const unknown: string[] = [];
  for (const n of names) {
    const exact = all.filter((e) => e.name === n);
    const hits = exact.length ? exact : all.filter((e) => e.test === n);
    if (!hits.length) unknown.push(n);
    for (const e of hits) chosen.add(e);
  }
  if (unknown.length) {
    const hints = unknown.filter((n) => all.some((e) => e.name.includes(n)))
      .map((n) => `--filter ${n} matches ${all.filter((e) => e.name.includes(n)).length}`);
    throw new SelectionError(`unknown selftest${unknown.length > 1 ? 's' : ''} ${unknown.map((n) => `"${n}"`).join(', ')}: ` +
      '`fuse-kfunc selftest --list` shows the names' + (hints.length ? ` (${hints.join('; ')})` : ''));
  }
  for (const p of patterns) {
    const hits = all.filter((e) => filterMatches(p, e));
    if (!hits.length) throw new SelectionError(`--filter "${p}" matches no selftest: \`fuse-kfunc selftest --list\` shows the names`);
    for (const e of hits) chosen.add(e);
  }
  return all.filter((e) => chosen.has(e));
}

/**
 * The harness's selection arguments. `-t NAME` picks a test name in every fixture and
 * variant, so it is used when all of those are selected; otherwise `-r fixture[.variant].test`
 * picks exactly one. Everything selected: no arguments.
 */
export function harnessArgs(all: SelftestEntry[], selected: SelftestEntry[]): string[] {
  if (selected.length === all.length && all.every((e) => selected.includes(e))) return [];
  const args: string[] = [];
  const done = new Set<string>();
  for (const e of selected) {
    if (done.has(e.test)) continue;
    done.add(e.test);
    const same = all.filter((x) => x.test === e.test);
    const picked = selected.filter((x) => x.test === e.test);
    if (picked.length === same.length) args.push('-t', e.test);
    else for (const x of picked) args.push('-r', x.name);
  }
  return args;
}

/** The guest command: `sh -c` with the selftests dir and every argument quoted. */
export function guestCommand(selftestsDir: string, args: string[]): string[] {
  return ['sh', '-c', [`cd ${shellQuote(selftestsDir)}`, `exec ./${SELFTEST_BIN}${args.map((a) => ` ${shellQuote(a)}`).join('')}`].join(' && ')];
}

/** The build's test list, from its own binary run on the host with `-l`. */
export function listTests(a: Artifacts): SelftestEntry[] {
  if (!a.selftests) throw new Error(`the build ${a.key} has no kernel selftests (no ${SELFTEST_BIN} in ${a.dir}/selftests)`);
  const bin = join(a.selftests, SELFTEST_BIN);
  const r = spawnSync(bin, ['-l'], {
    cwd: a.selftests, encoding: 'utf8', timeout: 30_000,
    env: { ...process.env, LD_LIBRARY_PATH: [a.libbpfLib, process.env.LD_LIBRARY_PATH].filter(Boolean).join(':') },
  });
  if (r.error) throw new Error(`cannot run ${bin} -l on the host: ${r.error.message}`);
  const text = `${r.stderr ?? ''}${r.stdout ?? ''}`;
  const tests = parseTestList(text);
  // The harness exits KSFT_SKIP (4) after -l; anything else, or no tests, is not a listing.
  if (!tests.length || (r.status !== 4 && r.status !== 0)) {
    throw new Error(`${bin} -l gave no test list (exit ${r.status ?? r.signal}):\n${text.split('\n').slice(0, 10).join('\n')}`);
  }
  return tests;
}

/** The version string an x86 bzImage carries in its setup header (boot protocol 2.0+). */
export function bzImageVersion(head: Buffer): string | undefined {
  if (head.length < 0x210 || head.toString('latin1', 0x202, 0x206) !== 'HdrS') return undefined;
  const ptr = head.readUInt16LE(0x20e);
  if (!ptr) return undefined;
  const at = ptr + 0x200;
  const end = head.indexOf(0, at);
  if (at >= head.length || end < 0) return undefined;
  return head.toString('latin1', at, end).trim() || undefined;
}

// The header's version pointer is 16 bits, plus 0x200: the string starts below 0x10200.
function readHead(path: string, bytes = 0x10200 + 512): Buffer {
  const fd = openSync(path, 'r');
  try {
    const b = Buffer.alloc(bytes);
    return b.subarray(0, readSync(fd, b, 0, bytes, 0));
  } finally { closeSync(fd); }
}

export interface SelftestOutcome {
  passed: number;
  failed: number;
  /** TAP result lines seen (passes, failures, skips). */
  ran: number;
  notes: string[];
}

/**
 * The verdict of one run, as `npm test` counts it: SKIP/TODO and results the plan promised
 * but that never came are failures; a nonzero exit with no failing result is one; a VM
 * failure (timeout, kernel report, failed boot) is one more.
 */
export function tally(tap: string, exitCode: number, vm?: Pick<VmResult, 'failure' | 'message'>): SelftestOutcome {
  // npm test's own count; a VM failure is its own failure, not a crash of the binary
  const { passed, failed, notes } = fromTap('selftests', tap, vm?.failure ? 0 : exitCode);
  const c = countTap(tap);
  if (!vm?.failure) return { passed, failed, ran: c.passed + c.failed + c.skipped, notes };
  return { passed, failed: failed + 1, ran: c.passed + c.failed + c.skipped,
    notes: [...notes, `vm: ${vm.failure}: ${vm.message?.split('\n')[0] ?? ''}`] };
}

/** The lines that end a run: the failures, the timing, and last "N passed, N failed". */
export function finalLines(o: SelftestOutcome, ms: number, selected: number, total: number): string[] {
  const sel = selected < total ? ` (${selected} of ${total} selected)` : '';
  return [
    ...o.notes.map((n) => `  - ${n}`),
    `selftests: ${o.ran} run${sel} in ${fmtDuration(ms)} (VM boot to exit)`,
    `${o.passed} passed, ${o.failed} failed`,
  ];
}

export const DEFAULT_TIMEOUT_SEC = 900;
/** The debug kernel runs several times slower under TCG (KASAN, lockdep). */
export const DEBUG_TIMEOUT_SEC = 3600;
const MEM_MB = 3072;

export interface SelftestOptions extends Selection {
  /** Print the (selected) test names and stop: no boot. */
  list?: boolean;
  /** Boot this bzImage instead of the build's, with the build's selftests binary. */
  kernel?: string;
  /** The debug kernel build (kernel build --debug) and its selftests. */
  debug?: boolean;
  timeoutSec?: number;
}

/** The whole command; its exit code: 0 all passed, 1 a failure, 124/125/126 the VM's. */
export async function runSelftests(repo: string, o: SelftestOptions = {}): Promise<number> {
  if (o.kernel && o.debug) throw new SelectionError('--kernel and --debug each choose the kernel to boot: give one');
  if (o.kernel && !existsSync(o.kernel)) throw new SelectionError(`--kernel ${o.kernel}: no such file (a bzImage)`);
  const a = await build(repo, o.debug ? { variant: DEBUG_VARIANT } : {});
  if (!a.selftests) throw new Error(`the ${o.debug ? 'debug ' : ''}build ${a.key} (${a.release}) has no kernel selftests: does the series add tools/testing/selftests/filesystems/fuse_bpf?`);
  const all = listTests(a);
  const selected = resolveSelection(all, o);
  if (o.list) {
    for (const e of selected) process.stdout.write(`${e.name}\n`);
    process.stderr.write(`${selected.length} of ${all.length} selftests (${join(a.selftests, SELFTEST_BIN)}, build ${a.key})\n`);
    return 0;
  }

  const kernel = o.kernel ?? a.bzImage;
  const buildName = `${o.debug ? 'debug build' : 'build'} ${a.key} (${a.release})`;
  if (o.kernel) {
    let version: string | undefined;
    try { version = bzImageVersion(readHead(o.kernel)); } catch { /* named by path only */ }
    process.stderr.write(`==> kernel: ${o.kernel}${version ? ` (${version})` : ''}, given with --kernel\n` +
      `==> selftests: ${join(a.selftests, SELFTEST_BIN)} of the current ${buildName}, built against the series' headers; ` +
      'booted on the other kernel\n');
  } else {
    process.stderr.write(`==> kernel: ${buildName}: ${a.bzImage}\n==> selftests: ${join(a.selftests, SELFTEST_BIN)}\n`);
  }
  const args = harnessArgs(all, selected);
  const memMB = o.debug ? DEBUG_MEM_MB : MEM_MB;
  const timeoutSec = o.timeoutSec ?? (o.debug ? DEBUG_TIMEOUT_SEC : DEFAULT_TIMEOUT_SEC);
  const accel = await chooseAccel(kernel, repo, o.kernel ? cacheDir() : a.dir);
  process.stderr.write(`==> booting for ${selected.length === all.length ? `all ${all.length}` : `${selected.length} of ${all.length}`} ` +
    `kernel selftests (${accel}, ${memMB} MB, timeout ${timeoutSec}s)${args.length ? `: ${SELFTEST_BIN} ${args.join(' ')}` : ''}\n`);

  let text = '';
  const tee = new PassThrough();
  tee.on('data', (b) => { text += b.toString(); process.stdout.write(b); });
  const r = await runVm({ kernel, repo, accel, command: guestCommand(a.selftests, args), stdout: tee, timeoutSec, memMB });
  if (r.failure) printFailure(r);
  const out = tally(text.replace(/\r/g, ''), r.exitCode, r);
  process.stdout.write(`\n${finalLines(out, r.seconds * 1000, selected.length, all.length).join('\n')}\n`);
  if (r.failure) return r.exitCode;
  return out.failed === 0 && out.passed > 0 ? 0 : 1;
}
