// The debug kernel variant: its fragments, key, dirs, the files it runs, and the console
// reports it must catch and print whole.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkFragments, mergeFragments, parseFragment } from '../../src/kernel/config.ts';
import { DEBUG_VARIANT, variantKey, variantPaths } from '../../src/kernel/build.ts';
import { DEBUG_GUEST_FILES, selectGuestFiles } from '../../src/testing/debug-kernel.ts';
import { fromTap, guestScript, selftestCommand, unnestKselftest } from '../../src/testing/suite.ts';
import { parseConsole, reportBlocks, BOOT_MARK } from '../../src/vm/console.ts';
import type { Artifacts } from '../../src/kernel/build.ts';

const main = { file: 'kernel-patch/config.fragment', text: 'CONFIG_LOCALVERSION="-fuse-kfunc"\nCONFIG_BPF=y\nCONFIG_KALLSYMS=y\n' };
const debug = { file: 'kernel-patch/debug.fragment', text: 'CONFIG_LOCALVERSION="-fuse-kfunc-debug"\n# CONFIG_SLUB_TINY is not set\nCONFIG_KASAN=y\n' };

test('fragments merge in order: the later value wins and remembers its file', (t) => {
  const m = mergeFragments([main, debug]);
  t.deepEqual(m.find((o) => o.name === 'CONFIG_LOCALVERSION'), { name: 'CONFIG_LOCALVERSION', value: '"-fuse-kfunc-debug"', file: debug.file });
  t.is(m.find((o) => o.name === 'CONFIG_BPF')?.file, main.file);
  t.is(m.filter((o) => o.name === 'CONFIG_LOCALVERSION').length, 1);
});

test('the fragment check names each option Kconfig dropped and the file that asked', (t) => {
  const dot = 'CONFIG_LOCALVERSION="-fuse-kfunc-debug"\nCONFIG_BPF=y\nCONFIG_KALLSYMS=y\nCONFIG_SLUB_TINY=y\n';
  t.deepEqual(checkFragments([main, debug], dot), [
    'kernel-patch/debug.fragment: CONFIG_SLUB_TINY: wanted n, got y',
    'kernel-patch/debug.fragment: CONFIG_KASAN: wanted y, got not set',
  ]);
  t.deepEqual(checkFragments([main, debug], dot.replace('CONFIG_SLUB_TINY=y', 'CONFIG_KASAN=y')), []);
  t.throws(() => mergeFragments([{ file: 'x.fragment', text: 'KASAN=y\n' }]), { message: /^x\.fragment: .*cannot parse "KASAN=y"/ });
});

test('kernel-patch/debug.fragment asks for every debug option, with SLUB_TINY off', (t) => {
  const opts = parseFragment(readFileSync(join(import.meta.dirname, '../../kernel-patch/debug.fragment'), 'utf8'));
  const want = (name: string, value: string) => t.is(opts.find((o) => o.name === name)?.value, value, name);
  for (const o of ['KASAN', 'KASAN_GENERIC', 'PROVE_LOCKING', 'LOCKDEP', 'PROVE_RCU', 'DEBUG_ATOMIC_SLEEP', 'DEBUG_LIST',
    'DEBUG_KERNEL', 'STACKTRACE', 'KALLSYMS']) want(`CONFIG_${o}`, 'y');
  want('CONFIG_SLUB_TINY', 'n');
  t.regex(opts.find((o) => o.name === 'CONFIG_LOCALVERSION')!.value, /^"-fuse-kfunc-debug"$/);
});

test('variant key: prefixed, and moves with the base key and with each fragment', (t) => {
  const k = variantKey('304f7fe8e8b6f120', false, DEBUG_VARIANT, [debug]);
  t.regex(k, /^debug-[0-9a-f]{16}$/);
  t.is(k, variantKey('304f7fe8e8b6f120', false, DEBUG_VARIANT, [debug]));
  t.not(k, variantKey('aaaaaaaaaaaaaaaa', false, DEBUG_VARIANT, [debug]));
  t.not(k, variantKey('304f7fe8e8b6f120', false, DEBUG_VARIANT, [{ ...debug, text: debug.text + 'CONFIG_DEBUG_LIST=y\n' }]));
  t.not(k, variantKey('304f7fe8e8b6f120', false, { ...DEBUG_VARIANT, name: 'other' }, [debug]).replace(/^other-/, 'debug-'));
  t.regex(variantKey('dev-0e26122a1d2d', true, DEBUG_VARIANT, [debug]), /^debug-dev-[0-9a-f]{16}$/);
});

test('variant dirs are apart from the normal build and never `builds`', (t) => {
  const n = variantPaths('/c', undefined);
  const d = variantPaths('/c', DEBUG_VARIANT);
  t.deepEqual(n, { obj: '/c/obj', tools: '/c/tools', builds: '/c/builds' });
  t.deepEqual(d, { obj: '/c/debug/obj', tools: '/c/debug/tools', builds: '/c/debug/builds' });
});

test('guest files: the committed ones run, the others are named as skipped', (t) => {
  const have = new Set(['test/guest/fuse-posix.test.ts', 'test/guest/policies.test.ts']);
  t.deepEqual(selectGuestFiles(DEBUG_GUEST_FILES, (f) => have.has(f)),
    { run: ['test/guest/fuse-posix.test.ts', 'test/guest/policies.test.ts'], skipped: ['test/guest/kernel-names.test.ts', 'test/guest/reliability.test.ts', 'test/guest/tree.test.ts'] });
});

test('the guest script runs the chosen files and the extra sections in order', (t) => {
  const a = { selftests: '/b/selftests' } as Artifacts;
  const s = guestScript('/r', a, { guestFiles: ['test/guest/a.test.ts'], avaTimeout: '40m',
    before: [{ name: 'pre', script: 'echo 1..0' }], after: [{ name: 'post', script: 'echo 1..0' }] })[2];
  t.regex(s, /--timeout=40m --concurrency=\$\(nproc\) --node-arguments='[^']*' 'test\/guest\/a\.test\.ts'/);
  const order = [...s.matchAll(/### section (\w+)/g)].map((m) => m[1]);
  // The selftests before the guest suite: one running into the deadline cannot starve them
  t.deepEqual(order, ['pre', 'selftests', 'guest', 'post']);
  // ... and their cd does not move the guest suite out of the repo
  t.regex(s, /\(cd \/b\/selftests && \.\/fuse_bpf_test\)/);
  t.regex(guestScript('/r', a)[2], /--timeout=20m --concurrency=\$\(nproc\) --node-arguments='--import=tsx --import=\/r\/src\/testing\/ava-deadline\.mjs' 'test\/guest\/\*\*\/\*\.test\.ts'/);
  // Every guest test has a deadline of its own; the debug kernel's are longer
  t.regex(guestScript('/r', a)[2], /FUSE_KFUNC_TEST_DEADLINE_SEC=900 /);
  t.regex(s, /FUSE_KFUNC_TEST_DEADLINE_SEC=900 /);
  t.regex(guestScript('/r', a, { testDeadlineSec: 1800 })[2], /FUSE_KFUNC_TEST_DEADLINE_SEC=1800 /);
});

test('a build in kselftest\'s layout runs its selftests through kselftest\'s run_tests', (t) => {
  const a = { dir: '/b/k1', tree: '/t', selftests: '/b/k1/kselftest/filesystems/fuse_bpf' } as Artifacts;
  const cmd = selftestCommand(a);
  t.regex(cmd, /^make -C \/t\/tools\/testing\/selftests O=\/b\/k1 TARGETS=filesystems\/fuse_bpf /);
  t.regex(cmd, / LIBBPF_A=\/b\/k1\/libbpf\/lib\/libbpf\.a /);
  t.regex(cmd, / run_tests 2>&1$/);
  t.regex(guestScript('/r', a)[2], /### section selftests"\nmake -C \/t\/tools/);
  // A build from before keeps running its binary
  t.is(selftestCommand({ dir: '/b/k0', selftests: '/b/k0/selftests' } as Artifacts), '(cd /b/k0/selftests && ./fuse_bpf_test)');
});

test('kselftest\'s nested TAP counts each harness test and the runner\'s own result', (t) => {
  const out = ['TAP version 13', '1..1', '# timeout set to 900', '# selftests: filesystems/fuse_bpf: fuse_bpf_test',
    '# TAP version 13', '# 1..3', '# # Starting 3 tests from 1 test cases.', '# #  RUN           fbt.a ...', '# ok 1 fbt.a',
    '# not ok 2 fbt.b', '# ok 3 fbt.c # SKIP no fuse', '# # Totals: pass:1 fail:1', 'not ok 1 selftests: filesystems/fuse_bpf: fuse_bpf_test # exit=1'].join('\n');
  const r = fromTap('selftests', unnestKselftest(out), 0);
  t.is(r.passed, 1);
  t.is(r.failed, 3);
  t.deepEqual(r.notes, ['selftests: fbt.b', 'selftests: SKIP: fbt.c # SKIP no fuse', 'selftests: selftests: filesystems/fuse_bpf: fuse_bpf_test # exit=1']);
  // A runner that timed out before the harness printed its results: the plan says what is missing
  const cut = fromTap('selftests', unnestKselftest(['1..1', '# 1..60', '# ok 1 fbt.a', 'not ok 1 selftests: x # TIMEOUT 900 seconds'].join('\n')), 0);
  t.is(cut.passed, 1);
  t.is(cut.failed, 60);
});

const KASAN = `[   50.1] ==================================================================
[   50.1] BUG: KASAN: slab-use-after-free in fuse_bpf_put+0x2a/0x90
[   50.1] Read of size 8 at addr ffff888004a1c010 by task node/312
[   50.1] Call Trace:
[   50.1]  fuse_bpf_put+0x2a/0x90
[   50.1] ==================================================================
[   50.2] Disabling lock debugging due to kernel taint
`;
const LOCKDEP = `[   60.0] ======================================================
[   60.0] WARNING: possible circular locking dependency detected
[   60.0] 6.12.117-fuse-kfunc-debug #1 Not tainted
[   60.0] ------------------------------------------------------
[   60.0] node/400 is trying to acquire lock:
`;

test('KASAN, lockdep, RCU, atomic-sleep and list reports are problems of their kind', (t) => {
  const boot = `[ 0.1] ${BOOT_MARK}\n`;
  const kinds = (s: string) => parseConsole(boot + s).problems.map((p) => p.kind);
  t.deepEqual(kinds(KASAN), ['bug']);
  t.deepEqual(kinds(LOCKDEP), ['lockdep']);
  for (const l of ['WARNING: suspicious RCU usage', 'WARNING: inconsistent lock state', 'WARNING: bad unlock balance detected!',
    'WARNING: held lock freed!', 'INFO: trying to register non-static key.']) t.deepEqual(kinds(`[ 1.0] ${l}\n`), ['lockdep'], l);
  t.deepEqual(kinds('[ 1.0] BUG: sleeping function called from invalid context at mm/slub.c:4119\n'), ['bug']);
  t.deepEqual(kinds('[ 1.0] list_add double add: new=ffff8880, prev=ffff8880, next=ffff8880.\n'), ['bug']);
  t.deepEqual(kinds('[ 1.0] list_del corruption, ffff888004a1c010->next is LIST_POISON1 (dead000000000100)\n'), ['bug']);
});

test('report blocks: whole reports from the rule above to the end marker, one per report', (t) => {
  const text = `[ 0.1] ${BOOT_MARK}\n${KASAN}[ 55.0] WARNING: CPU: 1 PID: 9 at fs/fuse/dev.c:1 x+0x1/0x2\n[ 55.0] Call Trace:\n[ 55.0] ---[ end trace 0000000000000000 ]---\n[ 55.1] after\n`;
  const blocks = reportBlocks(text, parseConsole(text).problems);
  t.is(blocks.length, 2);
  t.is(blocks[0].kind, 'bug');
  t.is(blocks[0].lines.length, 6);
  t.regex(blocks[0].lines[0], /=====/);
  t.regex(blocks[0].lines[5], /=====/);
  t.deepEqual(blocks[1].lines.map((l) => l.replace(/^\[[^\]]*\] /, '')),
    ['WARNING: CPU: 1 PID: 9 at fs/fuse/dev.c:1 x+0x1/0x2', 'Call Trace:', '---[ end trace 0000000000000000 ]---']);
  // A report with no end marker stops after `max` lines.
  t.is(reportBlocks(LOCKDEP + 'a\n'.repeat(200), parseConsole(LOCKDEP).problems, 10)[0].lines.length, 11);
});
