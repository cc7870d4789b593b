// The README-as-a-test bookkeeping: every shell block of the docs a newcomer follows has a
// marker, every command of a block that runs has a check (or says why it does not run).
// Running them is npm test's doc-commands step (src/testing/doc-commands.ts).
import test from 'ava';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import {
  CHECKS, coverageErrors, guestPaths, guestScript, mountArgs, parseDocBlocks, readDocBlocks, splitGuestOutput,
} from '../../src/testing/doc-commands.ts';

const repo = join(dirname(fileURLToPath(import.meta.url)), '../..');

test('every shell block of README.md, docs/mount.md and docs/policies.md is marked and every command checked', (t) => {
  const blocks = readDocBlocks(repo);
  t.true(blocks.length >= 5, `found ${blocks.length} shell blocks`);
  t.deepEqual(coverageErrors(blocks), []);
  // Both kinds run something, and README's in-guest flow is among it
  t.true(blocks.some((b) => b.kind === 'host' && b.commands.some((c) => c.text === 'npm run demo')));
  t.true(blocks.some((b) => b.kind === 'guest' && b.commands.some((c) => /--program bpf\/examples\/tree\.bpf\.c$/.test(c.text))));
});

test('a block without a marker, a bad marker, an illustrative block without a reason, an unchecked command are errors', (t) => {
  const md = [
    '```sh', 'fuse-kfunc nothing', '```', '',
    '<!-- doc-test: hots -->', '```sh', 'ls', '```',
    '<!-- doc-test: illustrative -->', '```sh', 'ls', '```',
    '<!-- doc-test: illustrative: shows a shape -->', '```sh', 'rm -rf /', '```',
    '<!-- doc-test: host -->', '```sh', 'npx fuse-kfunc no-such-command   # comment', '```',
    '```ts', 'not a shell block', '```',
  ].join('\n');
  const errors = coverageErrors(parseDocBlocks('x.md', md));
  t.is(errors.length, 4, errors.join('\n'));
  t.regex(errors[0], /^x\.md:1: shell block without a marker/);
  t.regex(errors[1], /^x\.md:6: marker "<!-- doc-test: hots -->" does not parse/);
  t.regex(errors[2], /^x\.md:10: an illustrative block says why/);
  t.regex(errors[3], /^x\.md:19: no check for `fuse-kfunc no-such-command`/);
});

test('commands are shown as run: npx and trailing comments go, quotes stay', (t) => {
  const [b] = parseDocBlocks('r.md', "<!-- doc-test: host -->\n```sh\nnpx fuse-kfunc selftest --filter 'ns_*'      # some\n```\n");
  t.is(b.commands[0].text, "fuse-kfunc selftest --filter 'ns_*'");
  t.truthy(CHECKS[b.commands[0].text]);
});

test('guest paths: /srv and /mnt move under the scratch directory, /tmp stays', (t) => {
  t.is(guestPaths('fuse-kfunc mount /srv/a /srv/b /mnt/s --x=/srv/c'), 'fuse-kfunc mount /tmp/doc-test/srv/a /tmp/doc-test/srv/b /tmp/doc-test/mnt/s --x=/tmp/doc-test/srv/c');
  t.is(guestPaths('fuse-kfunc mount /tmp/b0 /tmp/mnt'), 'fuse-kfunc mount /tmp/b0 /tmp/mnt');
  t.deepEqual(mountArgs('fuse-kfunc mount /a /b /m --policy stripe --chunk 64k'), { backings: ['/a', '/b'], mountpoint: '/m' });
  t.is(mountArgs('fuse-kfunc stats /m'), undefined);
});

test('the guest script marks each command; its output splits back per command, a cut run keeps what it printed', (t) => {
  const cmds = [{ file: 'f', line: 1, text: 'fuse-kfunc policy list' }, { file: 'f', line: 2, text: 'fuse-kfunc stats /tmp/mnt' }];
  const script = guestScript(cmds);
  t.regex(script, /^echo '@@doc-test 0 begin'$/m);
  t.regex(script, /^echo "@@doc-test 1 end \$rc"$/m);
  const out = ['boot noise', '@@doc-test 0 begin', 'stripe\tx', '@@doc-test 0 end 0', '@@doc-test 1 begin', 'opcode kernel daemon'].join('\n');
  t.deepEqual(splitGuestOutput(out, 2), [{ code: 0, out: 'stripe\tx' }, { code: -1, out: 'opcode kernel daemon' }]);
});

test('a guest-ts block runs as a module: named, its ./src/ imports and /srv, /mnt paths rewritten, its directories made', (t) => {
  const md = ["<!-- doc-test: guest-ts: sdk-mount -->", '```ts', "import { mount } from './src/sdk/mount.ts';",
    "await mount({ backings: ['/srv/data'], mountpoint: '/mnt/data' });", '```',
    '<!-- doc-test: guest-ts -->', '```ts', 'x', '```'].join('\n');
  const blocks = parseDocBlocks('m.md', md);
  t.is(blocks[0].commands[0].text, 'ts:sdk-mount');
  t.deepEqual(coverageErrors(blocks), ['m.md:7: a guest-ts block is named: <!-- doc-test: guest-ts: NAME -->']);
  const script = guestScript(blocks[0].commands, '/repo');
  t.regex(script, /^import \{ mount \} from '\/repo\/src\/sdk\/mount\.ts';$/m);
  t.regex(script, /^mkdir -p \/tmp\/doc-test\/srv\/data \/tmp\/doc-test\/mnt\/data$/m);
  t.regex(script, /^console\.log\('doc-test: ran to its end'\);$/m);
  t.regex(script, /^\(cd "\$REPO" && node --import tsx "\$D\/sdk-mount\.mts"\) 2>&1; rc=\$\?$/m);
});

test('colours the guest console added do not reach the checks', (t) => {
  const out = '@@doc-test 0 begin\n{ INIT: { kernel: \x1b[33m0\x1b[39m, daemon: \x1b[33m1\x1b[39m } }\n@@doc-test 0 end 0';
  t.deepEqual(splitGuestOutput(out, 1), [{ code: 0, out: '{ INIT: { kernel: 0, daemon: 1 } }' }]);
  t.regex(guestScript([]), /^export NO_COLOR=1$/m);
});
