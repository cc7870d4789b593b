// README as a test: every shell command shown in the docs a newcomer follows (README.md,
// docs/mount.md, docs/policies.md) runs in npm test, host commands on the host and guest
// commands in one guest boot, and its output is checked for what the doc claims.
//
// A fenced shell block carries a marker comment on the line before it:
//   <!-- doc-test: host -->               run on the host, in the repository
//   <!-- doc-test: guest -->              run in the guest (all guest blocks share one boot)
//   <!-- doc-test: illustrative: WHY -->  not run, by design; WHY is required
// Each command of a host or guest block needs an entry in CHECKS: the claim and a check of
// its output, or `byDesign`, why that one command is not run here. test/unit/doc-commands
// fails when a block has no marker or a command no entry, so a doc cannot grow an example
// that nothing runs by accident. A TypeScript example of the SDK may be marked
//   <!-- doc-test: guest-ts: NAME -->     run in the guest as a module, checked by CHECKS['ts:NAME']
// (its imports of ./src/ point at the checkout; it runs to its end, then prints a line).
//
// What the runner changes, and nothing else: `npx fuse-kfunc`/`fuse-kfunc` is this checkout's
// bin/fuse-kfunc.js; in the guest, /srv/... and /mnt/... move under a scratch directory (the
// guest's root is the host's, read-only), which is also the working directory (bpf/ links to
// the checkout's); a `fuse-kfunc mount` runs in the background until the next mount or the
// end, and a file is written and read back through it before the commands that follow.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tapWriter } from './tap.ts';
import { shellQuote } from '../vm/qemu.ts';

export const DOC_FILES = ['README.md', 'docs/mount.md', 'docs/policies.md'];
const SHELL_LANGS = new Set(['sh', 'bash', 'shell']);
const MARKER = /^<!--\s*doc-test:\s*(host|guest|guest-ts|illustrative)(?::\s*(.*?))?\s*-->$/;

export type BlockKind = 'host' | 'guest' | 'guest-ts' | 'illustrative';

export interface DocCommand {
  file: string;
  /** 1-based line in the file */
  line: number;
  /** as shown, without `npx ` and without a trailing `# comment`; `ts:NAME` for a module */
  text: string;
  /** a guest-ts block's source */
  code?: string;
}

export interface DocBlock {
  file: string;
  line: number;
  kind?: BlockKind;
  /** why an illustrative block is not run */
  reason?: string;
  /** a marker that does not parse, quoted for the error */
  badMarker?: string;
  commands: DocCommand[];
}

/** Strip what the runner does not run: `npx `, a trailing comment. */
export function normalizeCommand(line: string): string {
  return line.replace(/\s+#\s.*$/, '').replace(/^npx\s+/, '').trim();
}

/** The shell blocks of a markdown file with their markers and commands. */
export function parseDocBlocks(file: string, text: string): DocBlock[] {
  const lines = text.split('\n');
  const blocks: DocBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\S*)\s*$/.exec(lines[i]);
    if (!open) continue;
    let end = i + 1;
    while (end < lines.length && !/^```\s*$/.test(lines[end])) end++;
    let p = i - 1;
    while (p >= 0 && lines[p].trim() === '') p--;
    const prev = p >= 0 ? lines[p].trim() : '';
    const m = MARKER.exec(prev);
    if (open[1] === 'ts' && m?.[1] === 'guest-ts') {
      // One "command": the module, named by the marker
      blocks.push({ file, line: i + 1, kind: 'guest-ts', reason: m[2] || undefined,
        commands: [{ file, line: i + 1, text: `ts:${m[2] ?? ''}`, code: lines.slice(i + 1, end).join('\n') }] });
    } else if (SHELL_LANGS.has(open[1])) {
      const block: DocBlock = { file, line: i + 1, commands: [] };
      if (m && m[1] !== 'guest-ts') {
        block.kind = m[1] as BlockKind;
        block.reason = m[2] || undefined;
      } else if (/doc-test/.test(prev)) {
        block.badMarker = prev;
      }
      for (let j = i + 1; j < end; j++) {
        const t = lines[j].trim();
        if (!t || t.startsWith('#')) continue;
        block.commands.push({ file, line: j + 1, text: normalizeCommand(t) });
      }
      blocks.push(block);
    }
    i = end;
  }
  return blocks;
}

export function readDocBlocks(repo: string): DocBlock[] {
  return DOC_FILES.flatMap((f) => parseDocBlocks(f, readFileSync(join(repo, f), 'utf8')));
}

export interface Result { code: number; out: string }

export interface Check {
  /** what the doc claims the command does, for the TAP line */
  claim: string;
  ok: (r: Result) => boolean;
  /** guest only: shell run right after the command ($M: the mount point of the last mount, $D: scratch) */
  after?: string;
  /** host only: bound on the command, seconds (default 600) */
  timeoutSec?: number;
}
export interface ByDesign { byDesign: string }

const mounted = (r: Result) => r.code === 0 && /fuse-kfunc: mounted /.test(r.out) && /^doc-test: hello$/m.test(r.out);
/** The `N passed, 0 failed` of a selftest run, N > 0, and the TAP plan saying N too. */
const allPassed = (r: Result, pick?: (name: string) => boolean) => {
  // The CLI's last stdout line; stderr (progress) follows it in r.out
  const m = /^(\d+) passed, 0 failed$/m.exec(r.out);
  const plan = /^1\.\.(\d+)$/m.exec(r.out);
  const names = [...r.out.matchAll(/^ok \d+ (\S+)$/gm)].map((x) => x[1]);
  return r.code === 0 && !!m && +m[1] > 0 && plan?.[1] === m[1] && names.length === +m[1] && (!pick || names.every(pick));
};

/** Per command (normalized): the check of what the doc says it does. */
export const CHECKS: Record<string, Check | ByDesign> = {
  // README: the two commands
  'npm run demo': {
    claim: 'builds or reuses the kernel, boots, mounts a mirror policy, prints kernel vs daemon counts',
    ok: (r) => r.code === 0 && /kernel served \d+ READ and \d+ WRITE; the daemon saw \d+ READ/.test(r.out) && /^OK: /m.test(r.out),
    timeoutSec: 1800,
  },
  'npm test': { byDesign: 'it is the run these checks are part of' },
  // README: the kernel workbench
  'fuse-kfunc kernel prepare': {
    claim: 'a git work tree of the base and the series (or a refusal to drop unexported work)',
    ok: (r) => (r.code === 0 && /work tree ready: .* \(\d+ patches applied on /.test(r.out)) ||
      (r.code !== 0 && /holds work not exported to kernel-patch\//.test(r.out)),
    timeoutSec: 1200,
  },
  'fuse-kfunc kernel build': {
    claim: 'bzImage, vmlinux, libbpf, bpftool, vmlinux.h, cached',
    ok: (r) => r.code === 0 && ['bzImage', 'vmlinux', 'vmlinux.h', 'libbpf', 'bpftool'].every((w) => new RegExp(`^\\s+${w.replace('.', '\\.')}\\s+/`, 'm').test(r.out)),
    timeoutSec: 3600,
  },
  'fuse-kfunc kernel status': {
    claim: 'unexported commits or edits, and whether a build is cached',
    ok: (r) => r.code === 0 && /^work tree: /m.test(r.out) && /^build: +\S+ built /m.test(r.out),
  },
  'fuse-kfunc kernel export': {
    byDesign: 'it rewrites kernel-patch/ from the work tree, a developer\'s step; exportSeries is tested on a scratch repository by test/unit/workbench-worktree.test.ts',
  },
  'fuse-kfunc vm run -- uname -r': {
    claim: 'runs one command in the guest, the patched kernel\'s release',
    ok: (r) => r.code === 0 && /^\d+\.\d+\.\d+-fuse-kfunc\s*$/m.test(r.out),
  },
  'fuse-kfunc vm shell': { byDesign: 'it is interactive (a terminal); it boots the guest `vm run` boots, which runs here' },
  'fuse-kfunc selftest': {
    claim: 'the series\' kernel selftests alone, one VM boot, all passing',
    ok: (r) => allPassed(r) && /selftests: \d+ run in /.test(r.out),
    timeoutSec: 1200,
  },
  'fuse-kfunc selftest --list': {
    claim: 'their names, without a boot',
    ok: (r) => r.code === 0 && /^fbt\.read_gap_zeroed$/m.test(r.out) && !/==> booting/.test(r.out),
  },
  "fuse-kfunc selftest --filter 'ns_*'": {
    claim: 'the ns_* selftests only',
    ok: (r) => allPassed(r, (n) => /^fbt\.ns_/.test(n)),
    timeoutSec: 1200,
  },
  'fuse-kfunc selftest read_gap_zeroed': {
    claim: 'one selftest by name',
    ok: (r) => allPassed(r, (n) => n === 'fbt.read_gap_zeroed') && /^1\.\.1$/m.test(r.out),
  },
  // README: in the guest
  'fuse-kfunc mount /tmp/backing /tmp/mnt --program bpf/examples/passthrough.bpf.c': {
    claim: 'mounts with a BPF program from C source',
    ok: mounted,
  },
  'fuse-kfunc stats /tmp/mnt': {
    claim: 'per opcode, served in the kernel vs sent to the daemon (READ in the kernel)',
    ok: (r) => r.code === 0 && /^opcode\s+kernel\s+daemon$/m.test(r.out) && /^READ\s+[1-9]\d*\s+\d+$/m.test(r.out),
  },
  'fuse-kfunc mount /tmp/backing /tmp/mnt --program bpf/examples/tree.bpf.c': {
    claim: 'the whole tree in BPF: a file created and one read back without the daemon',
    ok: (r) => mounted(r) && /^CREATE\s+[1-9]\d*\s+0$/m.test(r.out) && /^READ\s+[1-9]\d*\s+0$/m.test(r.out),
    after: 'echo new > "$M/doc-test-new" && fuse-kfunc stats "$M"',
  },
  'fuse-kfunc mount /tmp/b0 /tmp/b1 /tmp/mnt --policy stripe --chunk 64k': {
    claim: 'a built-in policy over two backing directories',
    ok: (r) => mounted(r) && /^b0: doc-test-f$/m.test(r.out) && /^b1: doc-test-f$/m.test(r.out),
    after: 'for b in b0 b1; do ls /tmp/$b | sed "s/^/$b: /"; done',
  },
  'fuse-kfunc policy show stripe --chunk 64k': {
    claim: 'the policy\'s BPF C, compiled from its TypeScript module, and the values its parameters get at load time',
    ok: (r) => r.code === 0 && /^#include "layout\.bpf\.h"$/m.test(r.out) && /^#line \d+ ".*stripe\.ts"$/m.test(r.out) && /param_chunk = 65536/.test(r.out),
  },
  // docs/mount.md: the SDK
  'ts:sdk-mount': {
    claim: 'mount() with a program from C source; stats, detach, attach, close, closed',
    ok: (r) => r.code === 0 && /^doc-test: ran to its end$/m.test(r.out),
  },
  // docs/policies.md
  'ts:sdk-policy': {
    claim: 'makePolicy() and mount(): the stripe policy in the kernel, then the same policy in the daemon alone',
    ok: (r) => r.code === 0 && /^doc-test: ran to its end$/m.test(r.out) && /INIT: \{ kernel: 0, daemon: 1 \}/.test(r.out),
  },
  'fuse-kfunc policy list': {
    claim: 'the built-in policies',
    ok: (r) => r.code === 0 && ['stripe', 'mirror', 'tier', 'route', 'union', 'filter'].every((p) => new RegExp(`^${p}\\t`, 'm').test(r.out)),
  },
  'fuse-kfunc policy compile mirror --backings 3 -o m.o': {
    claim: 'the policy compiled to a BPF object',
    ok: (r) => r.code === 0 && /^magic: ELF$/m.test(r.out),
    after: 'printf "magic: %s\\n" "$(head -c 4 m.o | tail -c 3)"',
  },
  'fuse-kfunc mount /srv/a /srv/b /mnt/s --policy stripe --chunk 64k': {
    claim: 'stripe over two backing directories, READ in the kernel',
    ok: (r) => mounted(r) && /^READ\s+[1-9]\d*\s+0$/m.test(r.out),
    after: 'fuse-kfunc stats "$M"',
  },
  'fuse-kfunc mount /srv/a /srv/b /mnt/s --policy mirror --names kernel': {
    claim: 'mirror with its names in the kernel: LOOKUP, OPEN, READ and WRITE by the program, nothing after INIT by the daemon',
    ok: (r) => mounted(r) && ['LOOKUP', 'OPEN', 'READ', 'WRITE'].every((op) => new RegExp(`^${op}\\s+[1-9]\\d*\\s+0$`, 'm').test(r.out)) &&
      [...r.out.matchAll(/^([A-Z][A-Z0-9_]+)\s+\d+\s+(\d+)$/gm)].every((m) => m[1] === 'INIT' || m[2] === '0'),
    after: 'fuse-kfunc stats "$M"',
  },
  'fuse-kfunc mount /srv/a /srv/b /mnt/s --policy stripe --chunk 64k --userspace': {
    claim: 'the same policy in the daemon alone: READ by the daemon',
    ok: (r) => mounted(r) && /^READ\s+0\s+[1-9]\d*$/m.test(r.out),
    after: 'fuse-kfunc stats "$M"',
  },
  "fuse-kfunc mount /srv/main /srv/logs /srv/scratch /mnt/r --policy route --rules '.log=1,tmp/=2'": {
    claim: 'route: *.log lands in the second backing directory, tmp/ in the third',
    ok: (r) => mounted(r) && /^logs: app\.log$/m.test(r.out) && /^scratch: tmp\/x$/m.test(r.out) && !/^main: app\.log$/m.test(r.out),
    after: 'echo a > "$M/app.log" && mkdir -p "$M/tmp" && echo b > "$M/tmp/x" && ' +
      '{ for b in main logs scratch; do (cd "$D/srv/$b" && find . -type f | sed "s|^\\./|$b: |"); done; }',
  },
};

/** Blocks and commands a doc test must account for, as error messages (empty: complete). */
export function coverageErrors(blocks: DocBlock[]): string[] {
  const errors: string[] = [];
  for (const b of blocks) {
    const where = `${b.file}:${b.line}`;
    if (b.badMarker) { errors.push(`${where}: marker ${JSON.stringify(b.badMarker)} does not parse: write <!-- doc-test: host -->, <!-- doc-test: guest --> or <!-- doc-test: illustrative: WHY -->`); continue; }
    if (!b.kind) { errors.push(`${where}: shell block without a marker: put <!-- doc-test: host|guest --> on the line before it, or <!-- doc-test: illustrative: WHY --> if it is not to run`); continue; }
    if (b.kind === 'illustrative') {
      if (!b.reason) errors.push(`${where}: an illustrative block says why: <!-- doc-test: illustrative: WHY -->`);
      continue;
    }
    if (b.kind === 'guest-ts' && !b.reason) { errors.push(`${where}: a guest-ts block is named: <!-- doc-test: guest-ts: NAME -->`); continue; }
    for (const c of b.commands) {
      const check = CHECKS[c.text];
      if (!check) errors.push(`${c.file}:${c.line}: no check for \`${c.text}\`: add one to CHECKS in src/testing/doc-commands.ts (or byDesign: why it is not run)`);
      else if (b.kind !== 'host' && 'timeoutSec' in check && check.timeoutSec) errors.push(`${c.file}:${c.line}: timeoutSec applies to host commands; the guest run has one deadline`);
      else if (b.kind === 'host' && 'after' in check && check.after) errors.push(`${c.file}:${c.line}: \`after\` applies to guest commands`);
    }
  }
  return errors;
}

// ---- running them -------------------------------------------------------------------------

/** `fuse-kfunc` as a shell function calling this checkout's CLI (bash: dash refuses the name). */
const cliFunction = (repo: string) => `fuse-kfunc() { ${shellQuote(process.execPath)} ${shellQuote(join(repo, 'bin/fuse-kfunc.js'))} "$@"; }`;
const GUEST_NODE = 'fuse-kfunc() { node "$REPO/bin/fuse-kfunc.js" "$@"; }';
const SCRATCH = '/tmp/doc-test';

/** In the guest, /srv/... and /mnt/... live under the scratch directory. */
export function guestPaths(cmd: string): string {
  return cmd.replace(/(^|[\s'"=])\/(srv|mnt)\//g, `$1${SCRATCH}/$2/`);
}

/** Positional arguments of `fuse-kfunc mount ...`: backing directories, then the mount point. */
export function mountArgs(cmd: string): { backings: string[]; mountpoint: string } | undefined {
  const m = /^fuse-kfunc mount\s+(.*)$/.exec(cmd);
  if (!m) return undefined;
  const pos: string[] = [];
  for (const w of m[1].split(/\s+/)) {
    if (w.startsWith('-')) break;
    pos.push(w);
  }
  if (pos.length < 2) return undefined;
  return { backings: pos.slice(0, -1), mountpoint: pos[pos.length - 1] };
}

// Each guest command's output lies between these lines of the script's output
const BEGIN = (i: number) => `@@doc-test ${i} begin`;
const END = (i: number, rc: string) => `@@doc-test ${i} end ${rc}`;
const BEGIN_RE = /^@@doc-test (\d+) begin$/;
const END_RE = /^@@doc-test (\d+) end (\d+)$/;

/** One script running every guest command in order, each between markers. */
export function guestScript(cmds: DocCommand[], repo = '$REPO'): string {
  const s: string[] = [
    `REPO=$(pwd); D=${SCRATCH}; M=`,
    // The guest's console is a terminal: no colours in what the checks read
    'export NO_COLOR=1',
    GUEST_NODE,
    'rm -rf "$D"; mkdir -p "$D/srv" "$D/mnt"; ln -s "$REPO/bpf" "$D/bpf"; cd "$D"',
    'mpid=',
    'stop_mount() {',
    '  [ -n "$mpid" ] || return 0',
    '  kill "$mpid" 2>/dev/null; wait "$mpid" 2>/dev/null',
    '  n=0; while grep -q " $M " /proc/mounts && [ $n -lt 100 ]; do sleep 0.1; n=$((n+1)); done',
    '  mpid=',
    '}',
  ];
  cmds.forEach((c, i) => {
    const cmd = guestPaths(c.text);
    const check = CHECKS[c.text] as Check;
    s.push(`echo ${shellQuote(BEGIN(i))}`);
    const ma = mountArgs(cmd);
    if (c.code !== undefined) {
      const code = guestPaths(c.code).replace(/(from\s+')\.\/src\//g, `$1${repo}/src/`) + "\nconsole.log('doc-test: ran to its end');\n";
      const dirs = [...new Set([...code.matchAll(new RegExp(`'(${SCRATCH}/(?:srv|mnt)/[^']+)'`, 'g'))].map((x) => x[1]))];
      const file = `"$D/${c.text.slice(3).replace(/[^\w-]/g, '_')}.mts"`;
      s.push(...(dirs.length ? [`mkdir -p ${dirs.map(shellQuote).join(' ')}`] : []),
        `cat > ${file} <<'DOC_TEST_TS_EOF'`, code, 'DOC_TEST_TS_EOF',
        // From the checkout, where tsx resolves; relative paths in the example are the checkout's
        `(cd "$REPO" && node --import tsx ${file}) 2>&1; rc=$?`);
    } else if (ma) {
      s.push('stop_mount',
        `mkdir -p ${[...ma.backings, ma.mountpoint].map(shellQuote).join(' ')}`,
        `M=${shellQuote(ma.mountpoint)}`,
        // node itself in the background (not the shell function), so that kill reaches it
        `${cmd.replace(/^fuse-kfunc /, 'node "$REPO/bin/fuse-kfunc.js" ')} > "$D/mount-${i}.log" 2>&1 & mpid=$!`,
        // Ready is what the command says (its "mounted" line comes after the program is
        // attached), not the mount table: a file written between the mount and the attach
        // is the daemon's node for good, and the checks would count its requests there.
        `n=0; until grep -q "^fuse-kfunc: mounted" "$D/mount-${i}.log" && grep -q " $M " /proc/mounts; do n=$((n+1)); { [ $n -lt 600 ] && kill -0 "$mpid" 2>/dev/null; } || break; sleep 0.1; done`,
        'if grep -q " $M " /proc/mounts; then',
        // written through the mount, read back after the caches are dropped: a real READ
        '  echo hello > "$M/doc-test-f" && echo 3 > /proc/sys/vm/drop_caches && printf "doc-test: %s\\n" "$(cat "$M/doc-test-f")"; rc=$?',
        ...(check.after ? [`  [ $rc -ne 0 ] || { ${check.after}; } 2>&1; rc=$((rc | $?))`] : []),
        'else rc=99; echo "doc-test: $M not mounted"; fi',
        `cat "$D/mount-${i}.log"`);
    } else {
      s.push(`{ ${cmd}; } 2>&1; rc=$?`);
      if (check.after) s.push(`[ $rc -ne 0 ] || { ${check.after}; } 2>&1; rc=$((rc | $?))`);
    }
    s.push(`echo "${END(i, '$rc')}"`);
  });
  s.push('stop_mount');
  return s.join('\n') + '\n';
}

/** Each guest command's output and exit status, from the run's output. */
export function splitGuestOutput(out: string, n: number): Result[] {
  const results: Result[] = Array.from({ length: n }, () => ({ code: -1, out: '' }));
  let cur = -1;
  let buf: string[] = [];
  for (const line of out.replace(/\r/g, '').replace(/\x1b\[[0-9;]*m/g, '').split('\n')) {
    const b = BEGIN_RE.exec(line);
    const e = END_RE.exec(line);
    if (b) { cur = +b[1]; buf = []; continue; }
    if (e && +e[1] === cur) { results[cur] = { code: +e[2], out: buf.join('\n') }; cur = -1; continue; }
    if (cur >= 0) buf.push(line);
  }
  // A command cut short (the guest stopped) keeps what it printed, with no status.
  if (cur >= 0) results[cur] = { code: -1, out: buf.join('\n') };
  return results;
}

function runHost(repo: string, c: DocCommand, check: Check): Result {
  const sec = check.timeoutSec ?? 600;
  const r = spawnSync('bash', ['-c', `${cliFunction(repo)}\n${c.text}`], {
    cwd: repo, encoding: 'utf8', maxBuffer: 256 << 20, timeout: sec * 1000,
    env: { ...process.env, FORCE_COLOR: '0' },
  });
  const timedOut = r.error && /ETIMEDOUT/.test(String(r.error));
  return { code: r.status ?? -1, out: `${r.stdout ?? ''}${r.stderr ?? ''}${timedOut ? `\n(timed out after ${sec}s)` : ''}` };
}

/** Run every doc command with a check, as TAP: one result per command, one per broken block. */
export function docCommandsTap(repo: string, opts: { guestTimeoutSec?: number } = {}): string {
  const { check: report, text } = tapWriter(20);
  const blocks = readDocBlocks(repo);
  for (const e of coverageErrors(blocks)) report(false, e);

  const run = (b: DocBlock) => b.commands.filter((c) => CHECKS[c.text] && !('byDesign' in CHECKS[c.text]));
  const title = (c: DocCommand) => `${c.file}:${c.line} \`${c.text}\`: ${(CHECKS[c.text] as Check).claim}`;

  for (const b of blocks.filter((x) => x.kind === 'host')) {
    for (const c of run(b)) {
      const check = CHECKS[c.text] as Check;
      const t0 = Date.now();
      const r = runHost(repo, c, check);
      process.stderr.write(`    ${c.text}: exit ${r.code} in ${Math.round((Date.now() - t0) / 1000)}s\n`);
      report(check.ok(r), title(c), r.out);
    }
  }

  const guest = blocks.filter((x) => x.kind === 'guest' || x.kind === 'guest-ts').flatMap(run);
  if (guest.length) {
    const t0 = Date.now();
    const r = spawnSync(process.execPath, [join(repo, 'bin/fuse-kfunc.js'), 'vm', 'run', '--timeout', String(opts.guestTimeoutSec ?? 900), '--',
      'bash', '-c', guestScript(guest, repo)], { cwd: repo, encoding: 'utf8', maxBuffer: 256 << 20 });
    process.stderr.write(`    ${guest.length} guest commands: vm run exit ${r.status} in ${Math.round((Date.now() - t0) / 1000)}s\n`);
    const all = `${r.stdout ?? ''}${r.stderr ?? ''}`;
    const results = splitGuestOutput(r.stdout ?? '', guest.length);
    guest.forEach((c, i) => {
      const res = results[i];
      report((CHECKS[c.text] as Check).ok(res), title(c), res.code === -1 && !res.out ? all : res.out);
    });
  }
  return text();
}
