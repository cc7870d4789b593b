// The program–daemon contract: bpf/include/fuse_kfunc_daemon.h (C) and src/sdk/contract.ts
// (TypeScript) must describe the same maps. The header is compiled with clang against the
// TypeScript numbers; the daemon's map check is exercised on layouts that are wrong.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  BACKING_STATS_SIZE, CONTRACT_MAPS, MAX_BACKINGS, NODE_NR_OFFSET, NODE_SIZE, decodeBackingStats, encodeNode, encodeNodeKey,
  programMaps, type MapLike,
} from '../../src/sdk/contract.ts';

const INCLUDE = fileURLToPath(new URL('../../bpf/include', import.meta.url));

function compile(body: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'contract-'));
  const src = join(dir, 'check.c');
  // The kernel types the header uses, without a kernel build.
  writeFileSync(src, `typedef unsigned int __u32;\ntypedef unsigned long long __u64;\n#include "fuse_kfunc_daemon.h"\n${body}\n`);
  try {
    execFileSync('clang-19', ['--target=bpf', '-fsyntax-only', '-Wall', '-Werror', '-I', INCLUDE, src], { stdio: 'pipe' });
    return '';
  } catch (e) {
    return String((e as { stderr?: Buffer }).stderr ?? e);
  }
}

test('the header and contract.ts agree on every size and offset', (t) => {
  const err = compile([
    `_Static_assert(FUSE_KFUNC_MAX_BACKINGS == ${MAX_BACKINGS}, "MAX_BACKINGS");`,
    `_Static_assert(FUSE_KFUNC_NODE_SIZE == ${NODE_SIZE}, "NODE_SIZE");`,
    `_Static_assert(sizeof(struct fuse_kfunc_node) == ${NODE_SIZE}, "sizeof node");`,
    `_Static_assert(__builtin_offsetof(struct fuse_kfunc_node, nr) == ${NODE_NR_OFFSET}, "nr");`,
    `_Static_assert(sizeof(struct fuse_kfunc_backing_stats) == ${BACKING_STATS_SIZE}, "backing stats");`,
    `_Static_assert(${CONTRACT_MAPS.nodes.value} == ${NODE_SIZE} && ${CONTRACT_MAPS.backing_stats.value} == ${BACKING_STATS_SIZE}, "maps");`,
  ].join('\n'));
  t.is(err, '');
});

test('a program\'s own node struct is checked against the daemon\'s part', (t) => {
  t.is(compile('struct mine { __u32 backing[4]; __u32 nr; __u32 cursor; __u64 refs[4]; };\nFUSE_KFUNC_NODE_CHECK(struct mine);'), '');
  t.regex(compile('struct bad { __u32 nr; __u32 backing[4]; __u32 x; __u64 refs[4]; };\nFUSE_KFUNC_NODE_CHECK(struct bad);'),
    /struct bad must begin like struct fuse_kfunc_node/);
  t.regex(compile('struct small { __u32 backing[4]; __u32 nr; };\nFUSE_KFUNC_NODE_CHECK(struct small);'), /struct small must begin/);
});

test('a node value: ids where the header has backing[], their count at nr', (t) => {
  const v = encodeNode([7, 9]);
  t.is(v.length, NODE_SIZE);
  t.deepEqual([0, 1, 2, 3].map((i) => v.readUInt32LE(i * 4)), [7, 9, 0, 0]);
  t.is(v.readUInt32LE(NODE_NR_OFFSET), 2);
  t.true(v.subarray(NODE_NR_OFFSET + 4).every((b) => b === 0), 'the program\'s part is zero');
  t.is(encodeNodeKey(5).readBigUInt64LE(0), 5n);
  t.throws(() => encodeNode([]));
  t.throws(() => encodeNode([1, 2, 3, 4, 5]));
  const r = Buffer.alloc(BACKING_STATS_SIZE);
  [1n, 2n, 3n, 4n, 5n, 6n].forEach((x, i) => r.writeBigUInt64LE(x, i * 8));
  t.deepEqual(decodeBackingStats(r), { reads: 1, readBytes: 2, writes: 3, writeBytes: 4, errors: 5, cached: 6 });
});

const fake = (keySize: number, valueSize: number): MapLike => ({ keySize, valueSize, update: () => {}, lookup: () => undefined, delete: () => true });

test('the daemon takes the contract\'s maps by name, checks them, ignores the rest', (t) => {
  const maps = { nodes: fake(8, NODE_SIZE), roots: fake(4, 4), tree_nodes: fake(8, 300), fuse_kfunc_stats: fake(4, 16) };
  const got = programMaps(Object.keys(maps), (n) => maps[n as keyof typeof maps], 'x.bpf.o');
  t.deepEqual(Object.keys(got).sort(), ['fuse_kfunc_stats', 'nodes', 'roots']);
  const bad = { nodes: fake(8, 24) };
  const e = t.throws(() => programMaps(['nodes'], () => bad.nodes, 'x.bpf.o'));
  t.regex(e!.message, /x\.bpf\.o's map "nodes" has 8-byte keys and 24-byte values; the daemon expects 8 and 56/);
  t.regex(e!.message, /fuse_kfunc_daemon\.h/);
  t.throws(() => programMaps(['roots'], () => fake(4, 8)), { message: /"roots" has 4-byte keys and 8-byte values/ });
});
