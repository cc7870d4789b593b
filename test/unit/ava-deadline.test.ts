// Each guest test has a deadline of its own (src/testing/ava-deadline.mjs): the one that hangs
// fails by name with what it logged, the others still run, and one may ask for longer.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const repo = join(dirname(fileURLToPath(import.meta.url)), '../..');

test('a test past its deadline fails by name with its log; the others run', (t) => {
  const r = spawnSync(process.execPath, [join(repo, 'node_modules/ava/entrypoints/cli.mjs'), '--tap', '--timeout=1m',
    `--node-arguments=--import=tsx --import=${join(repo, 'src/testing/ava-deadline.mjs')}`, 'test/fixtures/ava-deadline/hang.mjs'],
  { cwd: repo, encoding: 'utf8', env: { ...process.env, FUSE_KFUNC_TEST_DEADLINE_SEC: '1' }, timeout: 60_000 });
  t.is(r.status, 1, r.stdout + r.stderr);
  t.regex(r.stdout, /^not ok \d+ - hangs$/m);
  t.regex(r.stdout, /^# {3}step 1 done$/m);
  t.regex(r.stdout, /per-test deadline of 1 s/);
  t.regex(r.stdout, /^ok \d+ - quick$/m);
  t.regex(r.stdout, /^ok \d+ - asks for longer$/m);
});
