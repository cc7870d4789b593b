// The policy parameters and the generated C, on the host (the C is checked in the VM; the
// stripe module's geometry in policy-compiler.test.ts).
import test from 'ava';
import { makePolicy, parseSize, PolicyError, type RoutePolicy, type StripePolicy } from '../../src/policy/spec.ts';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { openCopy } from '../../src/policy/fanout.ts';
import { TierDaemon } from '../../src/policy/runtime/tiers.ts';
import os from 'node:os';
import path from 'node:path';
import { buildPolicy, compiledModule, generatePolicy, policyGlobals, withKernelNames } from '../../src/policy/build.ts';
import { builtinModuleFile } from '../../src/policy/builtin/index.ts';
import { layerHooks, placementHooks, tierHooks } from '../../src/policy/runtime/functions.ts';
import { repoRoot } from '../../src/util/paths.ts';
import { PlacementDaemon } from '../../src/policy/runtime/placement.ts';
import { nativeCheck } from '../../src/policy/compiler/native.ts';
import type { NameRule } from '../../src/policy/lang/define.ts';
import { prng } from '../../src/testing/workload.ts';

test('policy parameters: sizes, defaults, clear errors', (t) => {
  t.is(parseSize('64k', 'x'), 65536);
  t.is(parseSize('1M', 'x'), 1 << 20);
  t.is(parseSize('8192', 'x'), 8192);
  t.deepEqual(makePolicy('stripe', {}, 2), { policy: 'stripe', backings: 2, chunk: 65536, attrTimeout: 1 });
  t.is((makePolicy('stripe', { chunk: '16k' }, 4) as StripePolicy).chunk, 16384);
  t.deepEqual(makePolicy('mirror', { read: 'primary' }, 3), { policy: 'mirror', backings: 3, read: 'primary', attrTimeout: 1 });
  t.throws(() => makePolicy('mirror', { read: 'random' }, 2), { message: /--read: "random" is not one of round-robin, primary/ });
  t.throws(() => makePolicy('mirror', { chunk: '4k' }, 2), { message: /mirror has no parameter --chunk \(it takes --read\)/ });
  t.throws(() => makePolicy('stripe', { chunk: '0' }, 2), { instanceOf: PolicyError, message: /--chunk: 0 is smaller than 4k/ });
  t.throws(() => makePolicy('stripe', { chunk: '5000' }, 2), { message: /--chunk: 5000 is not a multiple of 4k/ });
  t.throws(() => makePolicy('stripe', { chunk: 'big' }, 2), { message: /--chunk: "big" is not a size/ });
  t.throws(() => makePolicy('stripe', {}, 1), { message: /needs 2\.\.4 backing directories, got 1/ });
  t.throws(() => makePolicy('stripe', { stripe: '2' }, 2), { message: /no parameter --stripe/ });
  t.throws(() => makePolicy('raid5', {}, 2), { message: /unknown policy "raid5": choose one of stripe, mirror/ });
});

test('stripe C comes from its module: parameters are globals set at load time, not constants', (t) => {
  const c = generatePolicy(makePolicy('stripe', { chunk: '16k' }, 3));
  t.regex(c, /const volatile __s64 param_chunk = 65536;/, 'the default; 16k is set before load');
  t.regex(c, /#define POLICY_OPS\t\tstripe_ops\n/);
  t.regex(c, /^\/\/ SPDX-License-Identifier: GPL-2.0\n/);
  t.notRegex(c, /undefined|NaN|\$\{/);
  t.deepEqual(policyGlobals(makePolicy('stripe', { chunk: '16k' }, 3)), { policy_backings: 3, policy_attr_timeout: 1, param_chunk: 16384 });
  t.deepEqual(policyGlobals(makePolicy('mirror', { read: 'primary' }, 3)), { policy_backings: 3, policy_attr_timeout: 1, param_read: 1 }, 'a choice is its index');
});

test('mirror C comes from its module: the replicas runtime, the read mode a global', (t) => {
  const c = generatePolicy(makePolicy('mirror', { read: 'primary' }, 3));
  t.regex(c, /const volatile __s64 param_read = READ_ROUND_ROBIN;/, 'the default; primary is set before load');
  t.regex(c, /#define POLICY_OPS\t\tmirror_ops\n/);
  t.regex(c, /#include "replicas.bpf.h"\n$/);
  t.notRegex(c, /undefined|NaN|\$\{/);
});

test('names in the kernel: one define switches the family runtime to names.bpf.h; families without it are refused before any C is compiled', (t) => {
  const c = generatePolicy(makePolicy('stripe', {}, 2));
  const k = withKernelNames(c, 'stripe', 'layout');
  t.false(c.includes('POLICY_KERNEL_NAMES'));
  t.true(k.indexOf('#define POLICY_KERNEL_NAMES') < k.indexOf('#include "policy.bpf.h"'), 'defined before the runtime is included');
  t.is(k.replace(/\/\* Names are served in the kernel[^\n]*\n#define POLICY_KERNEL_NAMES\n\n/, ''), c, 'and nothing else differs');
  for (const f of ['layout.bpf.h', 'replicas.bpf.h']) {
    const h = fs.readFileSync(path.join(repoRoot(), 'bpf/runtime', f), 'utf8');
    t.regex(h, /#ifdef POLICY_KERNEL_NAMES\n#include "names\.bpf\.h"\n#else\n#include "dispatch\.bpf\.h"/, `${f} ends with names.bpf.h under the define`);
  }
  for (const [name, family] of [['route', 'placement'], ['tier', 'tiers'], ['union', 'layers']] as const) {
    t.throws(() => buildPolicy(makePolicy(name, {}, 2), '/nonexistent-build', { kernelNames: true }), {
      instanceOf: PolicyError, message: new RegExp(`the ${family} family's names are the daemon's yet \\(mount it without names: 'kernel'\\)`),
    });
  }
});

test('filter: one backing, --deny parsed and checked', (t) => {
  t.deepEqual(makePolicy('filter', {}, 1), { policy: 'filter', backings: 1, deny: [], attrTimeout: 1 });
  t.deepEqual((makePolicy('filter', { deny: 'write, FALLOCATE,write' }, 1) as { deny: string[] }).deny, ['write', 'fallocate']);
  t.throws(() => makePolicy('filter', { deny: 'getattr' }, 1), { message: /--deny: "getattr" is not one of read, write, fsync/ });
  t.throws(() => makePolicy('filter', {}, 2), { message: /filter needs 1 backing directory, got 2/ });
  // The module: before() and after() in the C around every served operation (access.bpf.h);
  // the denied operations a bit mask of FUSE opcodes, set at load.
  const spec = makePolicy('filter', { deny: 'write,fsync' }, 1);
  const c = generatePolicy(spec);
  t.regex(c, /return policy_op_in\(param_deny, op\) \? 1 \/\* EPERM \*\/ : 0;/);
  t.regex(c, /#include "access\.bpf\.h"/);
  t.is(policyGlobals(spec).param_deny, 2 ** 16 + 2 ** 20, 'bits 16 (WRITE) and 20 (FSYNC)');
  const filter = compiledModule(builtinModuleFile('filter'));
  t.deepEqual(nativeCheck(filter, [{ backings: 1, deny: [] }, { backings: 1, deny: ['write', 'fsync'] }]).mismatches, []);
});

test('tier: two backings, promote-max a size', (t) => {
  t.deepEqual(makePolicy('tier', {}, 2), { policy: 'tier', backings: 2, promoteMax: 64 << 20, attrTimeout: 1 });
  t.is((makePolicy('tier', { 'promote-max': '0' }, 2) as { promoteMax: number }).promoteMax, 0);
  t.throws(() => makePolicy('tier', {}, 3), { message: /tier needs 2 backing directories, got 3/ });
  t.throws(() => makePolicy('tier', { 'promote-max': 'lots' }, 2), { message: /--promote-max: "lots" is not a size/ });
  // The module: promote() in the C (checked natively; the daemon calls it at open), the
  // promote-max value a global set at load, the tiers runtime (bpf/runtime/tiers.bpf.h).
  const spec = makePolicy('tier', { 'promote-max': '1m' }, 2);
  const c = generatePolicy(spec);
  t.regex(c, /return param_promote_max_?\b.*|return size <= param_promote_max;/);
  t.regex(c, /#include "tiers\.bpf\.h"/);
  t.is(policyGlobals(spec).param_promote_max, 1 << 20);
  t.notRegex(c, /undefined|NaN|\$\{/);
  const tier = compiledModule(builtinModuleFile('tier'));
  const promote = tierHooks({ name: 'tier', family: tier.family, js: tier.js }).promote;
  t.true(promote(1 << 20, { backings: 2, promoteMax: 1 << 20 }) && !promote((1 << 20) + 1, { backings: 2, promoteMax: 1 << 20 }));
  t.deepEqual(nativeCheck(tier, [{ backings: 2, promoteMax: 0 }, { backings: 2, promoteMax: 32768 }, { backings: 2, promoteMax: 64 << 20 }]).mismatches, []);
});

test('route: rules parsed, checked against the backings, first match wins', (t) => {
  const p = makePolicy('route', { rules: '.log=1, logs/=2' }, 3) as RoutePolicy;
  t.deepEqual(p.rules, [{ kind: 'ext', match: '.log', to: 1 }, { kind: 'prefix', match: 'logs/', to: 2 }]);
  // The module's place(), as the daemon runs it.
  const route = compiledModule(builtinModuleFile('route'));
  const place = placementHooks({ name: 'route', family: route.family, js: route.js }).place;
  const routeOf = (rules: readonly NameRule[], rel: string) => place(rel, { backings: 3, rules });
  t.is(routeOf(p.rules, 'a/b.log'), 1);
  t.is(routeOf(p.rules, 'logs/x.log'), 1, 'the first rule that matches');
  t.is(routeOf(p.rules, 'logs/sub/x.txt'), 2);
  t.is(routeOf(p.rules, 'logsx/y'), 0, 'a prefix is a whole directory');
  t.is(routeOf(p.rules, 'x.log.gz'), 0);
  t.is(routeOf([], 'anything.log'), 0);
  t.throws(() => makePolicy('route', { rules: '.log=3' }, 3), { message: /backing 3 does not exist \(0..2 for 3 directories\)/ });
  t.throws(() => makePolicy('route', { rules: 'log' }, 2), { message: /"log" is not PATTERN=INDEX/ });
  t.throws(() => makePolicy('route', { rules: 'log=1' }, 2), { message: /an extension starts with "\."/ });
  t.throws(() => makePolicy('route', { rules: '../x/=1' }, 2), { message: /without "\." or "\.\."/ });
  t.throws(() => makePolicy('route', { rules: '/abs/=1' }, 2), { message: /relative directory path/ });
  t.throws(() => makePolicy('route', { rules: '.log=1' }, 1), { message: /route needs 2..4 backing directories, got 1/ });
  t.throws(() => makePolicy('route', { rules: Array.from({ length: 9 }, (_, i) => `.e${i}=1`).join(',') }, 2), { message: /9 rules, at most 8/ });
  // The C: the module's function over the rules global, which the loader sets (bytes).
  const c = generatePolicy(p);
  t.regex(c, /static __always_inline __attribute__\(\(unused\)\) __s64 policy_place\(const char \*path, __s64 path_len\)/);
  t.regex(c, /for \(__s64 r = 0; r < POLICY_RULES_MAX && r < param_rules_len; r\+\+\)/);
  t.regex(c, /#include "placement\.bpf\.h"/);
  const g = policyGlobals(p);
  t.is(g.param_rules_len, 2);
  const bytes = Buffer.from(g.param_rules as number[]);
  t.is(bytes.length, 8 * 64);
  t.deepEqual([bytes.readUInt32LE(0), bytes.readUInt32LE(4), bytes.subarray(8, 12).toString()], [1, 4, '.log']);
  t.deepEqual([bytes.readUInt32LE(64), bytes.readUInt32LE(68), bytes.subarray(72, 77).toString()], [2, 5, 'logs/']);
  // The same function in C (with policy_str.h) and in TypeScript, on random paths.
  const r = nativeCheck(route, [
    { backings: 3, rules: p.rules },
    { backings: 2, rules: [] },
    { backings: 4, rules: [{ match: 'a/b/', to: 3 }, { match: '.c', to: 1 }, { match: '.é', to: 2 }, { match: 'logs/', to: 1 }] },
  ]);
  t.true(r.calls >= 3000);
  t.deepEqual(r.mismatches, []);
});

test('placement: a directory rename is refused (EXDEV) exactly when a file under it would change backing', async (t) => {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'fuse-kfunc-place-'));
  t.teardown(() => fs.rmSync(base, { recursive: true, force: true }));
  const b = [0, 1].map((i) => path.join(base, `b${i}`));
  const put = (i: number, rel: string) => {
    fs.mkdirSync(path.dirname(path.join(b[i]!, rel)), { recursive: true });
    fs.writeFileSync(path.join(b[i]!, rel), '');
  };
  put(1, 'd/a.log');
  put(0, 'e/sub/x.txt');
  fs.mkdirSync(path.join(b[1]!, 'e/sub'), { recursive: true });
  const route = compiledModule(builtinModuleFile('route'));
  const d = new PlacementDaemon({ name: 'route', backings: b, hooks: placementHooks({ name: 'route', family: route.family, js: route.js }), context: { backings: 2, rules: [{ match: '.log', to: 1 }, { match: 'logs/', to: 1 }] } });
  t.false(await d.movesFiles('d', 'logs/d'), 'a.log stays in backing 1 under logs/');
  t.false(await d.movesFiles('e', 'f'));
  t.true(await d.movesFiles('e', 'logs/e'), 'sub/x.txt would move to backing 1');
  t.true(await d.movesFiles('e', 'x/logs/e') === false, 'a prefix is from the root');
});

test('union: an upper over 1..3 lowers; the program refuses writes to a lower layer', (t) => {
  t.deepEqual(makePolicy('union', {}, 3), { policy: 'union', backings: 3, attrTimeout: 1 });
  t.throws(() => makePolicy('union', {}, 1), { message: /union needs 2..4 backing directories, got 1/ });
  t.throws(() => makePolicy('union', { chunk: '4k' }, 2), { message: /union has no parameter --chunk \(it takes none\)/ });
  // The module: its hidden() in the C (for the native check; the daemon calls it), the
  // layers runtime whose WRITE refuses a lower layer (bpf/runtime/layers.bpf.h).
  const c = generatePolicy(makePolicy('union', {}, 2));
  t.regex(c, /return policy_str_prefix\(name, name_len, "\.wh\.", 4\);/);
  t.regex(c, /#include "layers\.bpf\.h"/);
  t.regex(fs.readFileSync(path.join(repoRoot(), 'bpf/runtime/layers.bpf.h'), 'utf8'), /return home == 0;/);
  t.regex(generatePolicy(makePolicy('route', {}, 2)), /#include "placement\.bpf\.h"/, 'route writes wherever the file is');
  t.notRegex(c, /undefined|NaN|\$\{/);
  const union = compiledModule(builtinModuleFile('union'));
  const hidden = layerHooks({ name: 'union', family: union.family, js: union.js }).hidden;
  t.true(hidden('.wh.x', { backings: 2 }) && hidden('.wh..wh..opq', { backings: 2 }));
  t.false(hidden('x.wh.', { backings: 2 }) || hidden('.wh', { backings: 2 }));
  t.deepEqual(nativeCheck(union, [{ backings: 2 }]).mismatches, []);
});

test('a copy the root daemon makes gets the first copy\'s owner and mode, and is never reached through a link', async (t) => {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'fuse-kfunc-copy-'));
  t.teardown(() => fs.rmSync(base, { recursive: true, force: true }));
  const firstPath = path.join(base, 'first');
  fs.writeFileSync(firstPath, 'x');
  fs.chownSync(firstPath, 1000, 1000);
  fs.chmodSync(firstPath, 0o4750);
  const first = await fsp.open(firstPath, 'r');
  t.teardown(() => first.close());
  const copy = await openCopy(path.join(base, 'copy'), first, { make: true, trunc: true });
  await copy.close();
  const st = fs.statSync(path.join(base, 'copy'));
  t.deepEqual([st.uid, st.gid, st.mode & 0o7777], [1000, 1000, 0o4750], 'the user\'s file, not root\'s setuid one');
  // A hostile backing directory: the copy's name is a link to a file of root's.
  const victim = path.join(base, 'victim');
  fs.writeFileSync(victim, 'secret');
  fs.symlinkSync(victim, path.join(base, 'link'));
  await t.throwsAsync(openCopy(path.join(base, 'link'), first, { make: true, trunc: true }), { code: 'ELOOP' });
  t.is(fs.readFileSync(victim, 'utf8'), 'secret', 'the link\'s target untouched');
});

test('tier: a small cold file is copied up at its first open, with the slow file\'s owner and mode; a planted link is replaced, not written through', async (t) => {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'fuse-kfunc-tier-'));
  t.teardown(() => fs.rmSync(base, { recursive: true, force: true }));
  const [slowDir, fastDir] = [path.join(base, 's'), path.join(base, 'f')];
  for (const d of [slowDir, fastDir]) fs.mkdirSync(d);
  fs.writeFileSync(path.join(slowDir, 'x'), 'hello');
  fs.chownSync(path.join(slowDir, 'x'), 1000, 1000);
  const victim = path.join(base, 'victim');
  fs.writeFileSync(victim, 'secret');
  fs.symlinkSync(victim, path.join(fastDir, 'x'));
  const tier = compiledModule(builtinModuleFile('tier'));
  const d = new TierDaemon({ name: 'tier', backings: [slowDir, fastDir], hooks: tierHooks({ name: 'tier', family: tier.family, js: tier.js }), context: { backings: 2, promoteMax: 32768 } });
  const slow = await fsp.open(path.join(slowDir, 'x'), 'r+');
  t.teardown(() => slow.close());
  const fds = await (d as unknown as { reconcile(rel: string, slow: fsp.FileHandle): Promise<fsp.FileHandle[]> }).reconcile('x', slow);
  t.is(fds.length, 1, 'the fast copy is open');
  for (const f of fds) await f.close();
  t.deepEqual([d.promotions, d.promoteErrors], [1, 0]);
  const st = fs.lstatSync(path.join(fastDir, 'x'));
  t.true(st.isFile());
  t.deepEqual([st.uid, fs.readFileSync(path.join(fastDir, 'x'), 'utf8')], [1000, 'hello']);
  t.is(fs.readFileSync(victim, 'utf8'), 'secret');
});
