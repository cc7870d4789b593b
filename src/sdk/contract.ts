// The program–daemon contract: the maps through which a BPF program and the daemon share
// state, their layouts and what each holds. bpf/include/fuse_kfunc_daemon.h is the C side
// of the same contract (test/unit/contract.test.ts compiles the header against these
// numbers); fuse_kfunc_stats.h holds the per-opcode counts (stats.ts). The daemon finds
// what a program takes part in by these names alone, and a map with a contract name but
// another layout is an error that says so, never a silently ignored map.

/** Backing directories of one mount, at most (FUSE_KFUNC_MAX_BACKINGS). */
export const MAX_BACKINGS = 4;

/** struct fuse_kfunc_node: __u32 backing[4]; __u32 nr; then 36 bytes of the program's. */
export const NODE_SIZE = 56;
export const NODE_NR_OFFSET = 16;

/** struct fuse_kfunc_backing_stats: six __u64. */
export const BACKING_STATS_SIZE = 48;

/** The contract's maps: name -> layout. */
export const CONTRACT_MAPS = {
  nodes: { key: 8, value: NODE_SIZE, what: 'nodeid -> struct fuse_kfunc_node (the backing ids of an open file)' },
  backing_stats: { key: 4, value: BACKING_STATS_SIZE, what: 'backing index -> struct fuse_kfunc_backing_stats' },
  roots: { key: 4, value: 4, what: 'index -> __u32 backing id of a backing directory' },
  cache_timeout: { key: 4, value: 4, what: 'index 0 -> __u32 seconds the kernel may cache names and attributes' },
  fuse_kfunc_stats: { key: 4, value: 16, what: 'opcode -> struct fuse_kfunc_op_stats (fuse_kfunc_stats.h)' },
} as const;

export type ContractMapName = keyof typeof CONTRACT_MAPS;

/** What the daemon needs of a loaded object's map. */
export interface MapLike {
  readonly keySize: number;
  readonly valueSize: number;
  update(key: Buffer, value: Buffer): void;
  lookup(key: Buffer): Buffer | undefined;
  delete(key: Buffer): boolean | void;
}

/** The contract maps an object has, checked; absent ones are undefined. */
export type ProgramMaps = Partial<Record<ContractMapName, MapLike>>;

/**
 * Picks the contract's maps out of an object's maps (by name) and checks their layouts.
 * `names`: every map the object has; `get`: the map by name.
 */
export function programMaps(names: string[], get: (name: string) => MapLike, object = 'the program'): ProgramMaps {
  const out: ProgramMaps = {};
  for (const [name, want] of Object.entries(CONTRACT_MAPS) as [ContractMapName, (typeof CONTRACT_MAPS)[ContractMapName]][]) {
    if (!names.includes(name)) continue;
    const m = get(name);
    if (m.keySize !== want.key || m.valueSize !== want.value) {
      throw new Error(`${object}'s map "${name}" has ${m.keySize}-byte keys and ${m.valueSize}-byte values; the daemon ` +
        `expects ${want.key} and ${want.value} (${want.what}, bpf/include/fuse_kfunc_daemon.h): use the header's types, ` +
        'or rename the map if it is not meant for the daemon');
    }
    out[name] = m;
  }
  return out;
}

export function encodeNodeKey(nodeid: number): Buffer {
  const k = Buffer.alloc(8);
  k.writeBigUInt64LE(BigInt(nodeid));
  return k;
}

/** A "nodes" value: the ids in backing order (0: no file there), the program's part zero. */
export function encodeNode(ids: number[]): Buffer {
  if (ids.length < 1 || ids.length > MAX_BACKINGS) throw new Error(`nodes: 1..${MAX_BACKINGS} backing ids, got ${ids.length}`);
  const v = Buffer.alloc(NODE_SIZE);
  ids.forEach((id, i) => v.writeUInt32LE(id, i * 4));
  v.writeUInt32LE(ids.length, NODE_NR_OFFSET);
  return v;
}

export function u32Key(i: number): Buffer {
  const k = Buffer.alloc(4);
  k.writeUInt32LE(i);
  return k;
}

export function u32Value(v: number): Buffer {
  return u32Key(v);
}

/** Per backing directory, the same shape in the program (backing_stats) and the daemon. */
export interface BackingCounts {
  reads: number;
  readBytes: number;
  writes: number;
  writeBytes: number;
  errors: number;
  /** Program only: requests that used the node's cached backing file reference. */
  cached: number;
}

export const zeroBacking = (): BackingCounts => ({ reads: 0, readBytes: 0, writes: 0, writeBytes: 0, errors: 0, cached: 0 });

export function decodeBackingStats(v: Buffer): BackingCounts {
  if (v.length !== BACKING_STATS_SIZE) throw new Error(`backing_stats value is ${v.length} bytes, expected ${BACKING_STATS_SIZE}`);
  const u = (i: number) => Number(v.readBigUInt64LE(i * 8));
  return { reads: u(0), readBytes: u(1), writes: u(2), writeBytes: u(3), errors: u(4), cached: u(5) };
}
