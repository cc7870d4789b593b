import test from 'ava';
import { parseMountArgs, parseStatsArgs } from '../../src/sdk/args.ts';
import { checkRoot, daemonV8Flags, mountPoints, MountError } from '../../src/sdk/mount.ts';

test('mount: backings then mountpoint, flags anywhere', (t) => {
  const a = parseMountArgs(['/a', '--program', 'p.bpf.c', '/b', '/mnt', '--timeout=0']);
  t.deepEqual(a.backings, ['/a', '/b']);
  t.is(a.mountpoint, '/mnt');
  t.is(a.program, 'p.bpf.c');
  t.is(a.timeout, 0);
  t.false(a.userspace);
  t.false(a.passthrough);
  t.true(parseMountArgs(['/a', '/m', '--passthrough']).passthrough);
  t.is(parseMountArgs(['/a', '/m', '--program=x.o', '--struct-ops', 'ops']).structOps, 'ops');
  t.deepEqual(parseMountArgs(['/a', '/m', '--program=x.o', '--set', 'passthrough=1', '--set=mask=0x10']).globals,
    { passthrough: 1, mask: 16 }, '--set repeats, with or without "="');
  t.deepEqual(parseMountArgs(['/a', '/m']).globals, {});
});

test('mount: usage errors', (t) => {
  const bad = (argv: string[], re: RegExp) => t.throws(() => parseMountArgs(argv), { name: 'UsageError', message: re });
  bad(['/only'], /BACKING\.\.\. MOUNTPOINT/);
  bad(['/a', '/m', '--program'], /--program needs a value/);
  bad(['/a', '/m', '--program', 'x.o', '--passthrough'], /exclude/);
  bad(['/a', '/m', '--userspace', '--passthrough'], /--userspace excludes/);
  bad(['/a', '/m', '--struct-ops', 'x'], /names a map of --program/);
  bad(['/a', '/m', '--set', 'passthrough=1'], /--set sets a global variable of --program/);
  bad(['/a', '/m', '--program', 'x.o', '--set', 'passthrough'], /--set wants NAME=VALUE.*got "passthrough"/);
  bad(['/a', '/m', '--program', 'x.o', '--set', 'x=-1'], /non-negative integer/);
  bad(['/a', '/m', '--program', 'x.o', '--set'], /--set wants NAME=VALUE/);
  bad(['/a', '/m', '--frobnicate'], /unknown option --frobnicate/);
  bad(['/a', '/m', '--timeout', 'soon'], /--timeout/);
  bad(['/a', '/b', '/m', '--chunk', '4k'], /--chunk is a policy parameter: add --policy NAME/);
  bad(['/a', '/b', '/m', '--policy', 'stripe', '--program', 'x.o'], /--policy brings its own program/);
  bad(['/a', '/b', '/m', '--policy', 'stripe', '--passthrough'], /--policy brings its own program/);
  t.true(parseMountArgs(['--help']).help);
  t.true(parseMountArgs(['-h']).help);
});

test('mount: --policy with its parameters', (t) => {
  const a = parseMountArgs(['/a', '/b', '/m', '--policy', 'stripe', '--chunk=16k', '--userspace']);
  t.is(a.policy, 'stripe');
  t.deepEqual(a.policyParams, { chunk: '16k' });
  t.true(a.userspace);
  t.deepEqual(a.backings, ['/a', '/b']);
});

test('mount: --names says who serves a policy\'s names', (t) => {
  t.is(parseMountArgs(['/a', '/b', '/m', '--policy', 'mirror', '--names', 'kernel']).names, 'kernel');
  const a = parseMountArgs(['/a', '/b', '/m', '--policy', 'stripe', '--names=daemon', '--chunk', '16k']);
  t.is(a.names, 'daemon');
  t.deepEqual(a.policyParams, { chunk: '16k' }, '--names is not a policy parameter');
  t.is(parseMountArgs(['/a', '/b', '/m', '--policy', 'mirror']).names, undefined);
  const bad = (argv: string[], re: RegExp) => t.throws(() => parseMountArgs(argv), { name: 'UsageError', message: re });
  bad(['/a', '/b', '/m', '--policy', 'mirror', '--names', 'bpf'], /--names is kernel or daemon, got "bpf"/);
  bad(['/a', '/b', '/m', '--names', 'kernel'], /--names says who serves a policy's names: it needs --policy/);
  bad(['/a', '/b', '/m', '--policy', 'mirror', '--names', 'kernel', '--userspace'], /excludes --userspace/);
});

test('stats: one mountpoint, --json', (t) => {
  t.deepEqual(parseStatsArgs(['/m', '--json']), { mountpoint: '/m', json: true, help: false });
  t.true(parseStatsArgs(['--help']).help);
  t.throws(() => parseStatsArgs([]), { message: /exactly one MOUNTPOINT/ });
  t.throws(() => parseStatsArgs(['/a', '/b']), { message: /exactly one MOUNTPOINT/ });
  t.throws(() => parseStatsArgs(['/a', '--x']), { message: /unknown option --x/ });
});

test('not root is a clear error', (t) => {
  const e = t.throws(() => checkRoot(1000), { instanceOf: MountError, message: /needs root/ });
  t.is(e?.kind, 'not-root');
  t.notThrows(() => checkRoot(0));
});

test('mount points from mountinfo, escapes undone', (t) => {
  const mi = [
    '22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw',
    '40 22 0:40 / /tmp/with\\040space rw - fuse.fuse-kfunc /b rw,user_id=0',
  ].join('\n');
  const m = mountPoints(mi);
  t.is(m.get('/'), 'ext4');
  t.is(m.get('/tmp/with space'), 'fuse.fuse-kfunc');
  t.is(m.size, 2);
});

test("the daemon's V8 flags: none by default, FUSE_KFUNC_DAEMON_V8_FLAGS split on whitespace", (t) => {
  t.deepEqual(daemonV8Flags({}), []);
  t.deepEqual(daemonV8Flags({ FUSE_KFUNC_DAEMON_V8_FLAGS: '' }), []);
  t.deepEqual(daemonV8Flags({ FUSE_KFUNC_DAEMON_V8_FLAGS: ' --interrupt-budget=600000  --max-lazy ' }), ['--interrupt-budget=600000', '--max-lazy']);
});
