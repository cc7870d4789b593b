// The mirror program, loaded: its "nodes" map as the daemon's MirrorSink, attach/detach
// on one FUSE connection, and its counters.
import { BpfObjectSpec, type LoadedObject, type Link } from '../bpf/object.ts';
import { attachToFuse, detachFromFuse } from '../bpf/attach.ts';
import { opName } from '../fuse/protocol.ts';
import {
  MAX_REPLICAS, OP_MAX, decodeOpStats, decodeReplicaStats, encodeNode, encodeNodeKey, u32Key,
  type OpCounts, type ReplicaCounts,
} from './mirror-layout.ts';
import type { MirrorSink } from './mirror.ts';

export const MIRROR_STRUCT_OPS = 'mirror_ops';

export interface MirrorBpfCounts {
  /** Per opcode name, what the program did with the requests it saw. */
  ops: Record<string, OpCounts>;
  replicas: ReplicaCounts[];
}

export class MirrorProgram {
  private link: Link | undefined;

  private constructor(private readonly obj: LoadedObject) {}

  /** Opens and loads a compiled mirror.bpf.o; throws VerifierError with the log on rejection. */
  static load(objectPath: string): MirrorProgram {
    const spec = BpfObjectSpec.open(objectPath);
    return new MirrorProgram(spec.load());
  }

  readonly sink: MirrorSink = {
    set: (nodeid, ids) => this.obj.map('nodes').update(encodeNodeKey(nodeid), encodeNode(ids)),
    delete: (nodeid) => void this.obj.map('nodes').delete(encodeNodeKey(nodeid)),
  };

  get attached(): boolean {
    return this.link !== undefined;
  }

  attach(devFd: number): void {
    if (this.link) return;
    const link = this.obj.attachStructOps(MIRROR_STRUCT_OPS);
    try {
      attachToFuse(devFd, link);
    } catch (e) {
      link.close();
      throw e;
    }
    this.link = link;
  }

  /** Detaches from the connection (waits for running programs) and drops the link. */
  detach(devFd: number): void {
    if (!this.link) return;
    detachFromFuse(devFd);
    this.link.close();
    this.link = undefined;
  }

  counts(): MirrorBpfCounts {
    const ops: Record<string, OpCounts> = {};
    const opMap = this.obj.map('op_stats');
    for (let op = 0; op < OP_MAX; op++) {
      const v = opMap.lookup(u32Key(op));
      if (!v) continue;
      const c = decodeOpStats(v);
      if (c.served || c.upcalled) ops[opName(op)] = c;
    }
    const repMap = this.obj.map('replica_stats');
    const replicas: ReplicaCounts[] = [];
    for (let i = 0; i < MAX_REPLICAS; i++) replicas.push(decodeReplicaStats(repMap.lookup(u32Key(i))!));
    return { ops, replicas };
  }

  close(): void {
    this.link?.close();
    this.link = undefined;
    this.obj.close();
  }
}
