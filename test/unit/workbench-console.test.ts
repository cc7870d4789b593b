import test from 'ava';
import { parseConsole, tail, BOOT_MARK, type ConsoleProblem } from '../../src/vm/console.ts';
import { countTap, verdict } from '../../src/testing/tap.ts';
import { splitSections } from '../../src/testing/suite.ts';
import { qemuArgs, shellQuote } from '../../src/vm/qemu.ts';

const boot = `[    0.000000] Linux version 6.12.117-fuse-kfunc\n[    1.2] ${BOOT_MARK}\n`;

test('a clean boot is booted with no problems', (t) => {
  t.deepEqual(parseConsole(boot), { booted: true, problems: [] });
});

test('panic, oops, BUG, WARN and lockups are recognised', (t) => {
  const cases: [string, ConsoleProblem][] = [
    ['Kernel panic - not syncing: sysrq triggered crash', 'panic'],
    ['BUG: kernel NULL pointer dereference, address: 0000000000000008', 'bug'],
    ['Oops: 0002 [#1] PREEMPT SMP', 'oops'],
    ['WARNING: CPU: 1 PID: 77 at fs/fuse/dev.c:123 fuse_simple_request+0x1/0x2', 'warn'],
    ['watchdog: BUG: soft lockup - CPU#0 stuck for 22s!', 'bug'],
    ['rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:', 'lockup'],
    ['VFS: Unable to mount root fs on unknown-block(0,0)', 'boot'],
  ];
  for (const [line, kind] of cases) {
    const r = parseConsole(boot + `[ 2.0] ${line}\n`);
    t.is(r.problems[0]?.kind, kind, line);
  }
});

test('ordinary messages are not problems, and a missing mark is a failed boot', (t) => {
  const r = parseConsole('[ 0.1] Warning: unable to open an initial console.\n[ 0.2] 9pnet: Installing 9P2000 support\n');
  t.deepEqual(r, { booted: false, problems: [] });
});

test('tail keeps the last lines without trailing blanks', (t) => {
  t.deepEqual(tail('a\nb\r\nc\n\n\n', 2), ['b', 'c']);
});

test('TAP counting: passes, failures, skips and missing results', (t) => {
  const c = countTap('TAP version 13\n1..5\nok 1 - a\nnot ok 2 - b\nok 3 - c # SKIP no fuse\n# ok 9 comment\n    ok 1 nested\n');
  t.is(c.passed, 1);
  t.is(c.failed, 1);
  t.is(c.skipped, 1);
  t.is(c.missing, 2);
  t.deepEqual(verdict(c), { passed: 1, failed: 4 });
  t.deepEqual(c.failures, ['b', 'SKIP: c # SKIP no fuse']);
});

test('kselftest harness output counts per case', (t) => {
  const out = 'TAP version 13\n1..2\n# Starting 2 tests from 1 test cases.\n#  RUN  global.a ...\n#            OK  global.a\nok 1 global.a\n#  RUN  global.b ...\nnot ok 2 global.b\n# FAILED: 1 / 2 tests passed.\n';
  t.deepEqual(verdict(countTap(out)), { passed: 1, failed: 1 });
});

test('guest output splits into sections with exit codes; a cut-off section has none', (t) => {
  const s = splitSections('noise\n### section guest\nok 1 - x\n### end guest rc=0\n### section selftests\nok 1 a\n');
  t.deepEqual(s.get('guest'), { body: 'ok 1 - x', rc: 0 });
  t.is(s.get('selftests')?.body.trim(), 'ok 1 a');
  t.is(s.get('selftests')?.rc, undefined);
});

test('qemu command line: 9p root read-only, repo and job shares, TCG by default', (t) => {
  const args = qemuArgs({ kernel: '/k/bzImage', command: ['true'], repo: '/r' }, '/j', { out: '/j/o', err: '/j/e' });
  const s = args.join(' ');
  t.regex(s, /local,id=root,path=\/,security_model=none,readonly=on/);
  t.regex(s, /mount_tag=repo/);
  t.regex(s, /init=\/r\/src\/vm\/guest-init\.sh/);
  t.regex(s, /-accel tcg,thread=multi/);
  t.notRegex(s, /kvm/);
  t.regex(qemuArgs({ kernel: 'k', command: [], repo: '/r', accel: 'kvm' }, '/j', { out: 'o', err: 'e' }).join(' '), /-accel kvm -cpu host/);
});

test('shell quoting survives the job file', (t) => {
  t.is(shellQuote('uname'), 'uname');
  t.is(shellQuote("it's"), `'it'\\''s'`);
  t.is(shellQuote('exit 7'), `'exit 7'`);
});
