// The mirror program's map layouts (bpf/examples/mirror.bpf.c), encoded and decoded here
// so the daemon and the reports never touch raw offsets elsewhere.

export const MAX_REPLICAS = 4;
export const OP_MAX = 64;

/**
 * struct mirror_node: __u32 backing[4]; __u32 nr; __u32 next; then four kptrs the program
 * fills (userspace writes zeros there; the kernel ignores them on update).
 */
export const NODE_SIZE = 24 + MAX_REPLICAS * 8;

export function encodeNodeKey(nodeid: number): Buffer {
  const k = Buffer.alloc(8);
  k.writeBigUInt64LE(BigInt(nodeid));
  return k;
}

export function encodeNode(ids: number[]): Buffer {
  if (ids.length < 1 || ids.length > MAX_REPLICAS) throw new Error(`mirror: 1..${MAX_REPLICAS} replicas, got ${ids.length}`);
  const v = Buffer.alloc(NODE_SIZE);
  ids.forEach((id, i) => v.writeUInt32LE(id, i * 4));
  v.writeUInt32LE(ids.length, 16);
  return v;
}

export function u32Key(i: number): Buffer {
  const k = Buffer.alloc(4);
  k.writeUInt32LE(i);
  return k;
}

/** struct mirror_op_stats: __u64 served; __u64 upcalled; */
export interface OpCounts {
  served: number;
  upcalled: number;
}

export function decodeOpStats(v: Buffer): OpCounts {
  return { served: Number(v.readBigUInt64LE(0)), upcalled: Number(v.readBigUInt64LE(8)) };
}

/** Per replica, the same shape in the program (struct mirror_replica_stats) and the daemon. */
export interface ReplicaCounts {
  reads: number;
  readBytes: number;
  writes: number;
  writeBytes: number;
  errors: number;
  /** Program only: requests that used the node's cached backing file reference. */
  cached: number;
}

export const zeroReplica = (): ReplicaCounts => ({ reads: 0, readBytes: 0, writes: 0, writeBytes: 0, errors: 0, cached: 0 });

export function decodeReplicaStats(v: Buffer): ReplicaCounts {
  const u = (i: number) => Number(v.readBigUInt64LE(i * 8));
  return { reads: u(0), readBytes: u(1), writes: u(2), writeBytes: u(3), errors: u(4), cached: u(5) };
}
