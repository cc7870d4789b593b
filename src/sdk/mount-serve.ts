// The daemon behind `mount()` as its own process (the caller does I/O on the mount; a FUSE
// daemon must not share its event loop with synchronous clients):
//   node --import tsx src/sdk/mount-serve.ts '<json ServeConfig>'
// Over IPC it reports {ready, mode, counting} or {error, name, log}, answers
// {cmd:'stats'} with {stats:{daemon, kernel}, tables}, {cmd:'detach'|'attach'} with
// {attached} (the program leaves or rejoins the connection; the mount stays), and
// {cmd:'close'} by unmounting, then
// reports {closed}. Losing the parent (IPC disconnect) unmounts too: no orphan mounts.
import fs from 'node:fs';
import { decodeStruct } from '../fuse/layout.ts';
import { OPEN_OUT, Op, RELEASE_IN } from '../fuse/protocol.ts';
import { mountFuse, type FuseHandle } from '../fuse/index.ts';
import type { Session, Handler } from '../fuse/session.ts';
import type { PtContext, FileHandleEntry } from '../fuse/pt-context.ts';
import { BpfObjectSpec, type BpfMap, type LoadedObject } from '../bpf/object.ts';
import type { FuseDevice } from '../fuse/dev.ts';
import { attachToFuse, detachFromFuse } from '../bpf/attach.ts';
import type { Link } from '../bpf/object.ts';
import { VerifierError } from '../bpf/errors.ts';
import { MirrorDaemon } from '../policy/mirror.ts';
import { StripeDaemon } from '../policy/stripe.ts';
import { TierDaemon } from '../policy/tier.ts';
import { RouteDaemon } from '../policy/route.ts';
import { UnionDaemon } from '../policy/union.ts';
import { filterDaemon } from '../policy/filter.ts';
import type { PolicySpec } from '../policy/spec.ts';
import { decodeReplicaStats, encodeNode, encodeNodeKey, NODE_SIZE, u32Key } from '../policy/mirror-layout.ts';
import { STATS_MAP, STATS_VALUE_SIZE, decodeKernelStats, type KernelCounts, type PerBacking } from './stats.ts';

export interface ServeConfig {
  backings: string[];
  mountpoint: string;
  /** Compiled object to load and attach (already checked for a struct_ops map). */
  object?: string;
  structOps?: string;
  /** Global variables of `object` to set before loading it. */
  globals?: Record<string, number>;
  passthrough: boolean;
  timeout?: number;
  /** A built-in policy: its daemon (the program, if any, is `object`). */
  policy?: PolicySpec;
}

export interface ServeStats {
  daemon: Record<string, number>;
  /** undefined: no program; null: the program has no fuse_kfunc_stats map. */
  kernel: Record<string, KernelCounts> | null | undefined;
  /** A multi-backing policy: what went to each backing directory. */
  backings?: PerBacking;
}


interface Ipc { send(m: unknown): void }

/**
 * One backing directory with a program that has a "nodes" map: register a backing id per
 * open regular file (FUSE_DEV_IOC_BACKING_OPEN, no FOPEN_PASSTHROUGH) and publish it as
 * nodeid -> { backing[0] = id, nr = 1 } (the mirror node layout); withdraw it at the last
 * RELEASE. The passthrough ops keep serving everything that is sent up.
 */
function publishBackingIds(obj: LoadedObject) {
  const nodes = obj.map('nodes');
  /** File handles (fh) holding a reference on their node's backing id. */
  const published = new Set<number>();
  return ({ session, fs }: { session: Session; fs: PtContext }) => {
    // The connection negotiated FUSE_PASSTHROUGH (needed for backing ids); files must not
    // use it, or READ/WRITE would bypass the program.
    fs.opts.passthrough = false;
    const publish = (reply: Buffer) => {
      const { fh } = decodeStruct(OPEN_OUT, reply);
      const h = fs.handles.get(Number(fh)) as FileHandleEntry | undefined;
      if (!h || h.kind !== 'file') return;
      // Not fatal: without an entry the program sends the file's requests to the daemon.
      try {
        const id = fs.backingFor(h.node, h.fd);
        try {
          nodes.update(encodeNodeKey(h.node.id), encodeNode([id]));
          published.add(Number(fh));
        } catch (e) {
          fs.releaseBacking(h.node);
          throw e;
        }
      } catch (e) {
        process.stderr.write(`fuse-kfunc: cannot publish a backing id for node ${h.node.id}: ${(e as Error).message}\n`);
      }
    };
    const wrapOpen = (op: number) => {
      const orig = session.handler(op)!;
      session.on(op, async (req, b) => {
        const r = await orig(req, b);
        if (Buffer.isBuffer(r)) publish(r);
        else if (Array.isArray(r)) publish(r[r.length - 1]!);
        return r;
      });
    };
    wrapOpen(Op.OPEN);
    wrapOpen(Op.CREATE);
    const release: Handler = session.handler(Op.RELEASE)!;
    session.on(Op.RELEASE, async (req, b) => {
      const { fh } = decodeStruct(RELEASE_IN, req.body);
      const h = fs.handles.get(Number(fh));
      try {
        return await release(req, b);
      } finally {
        if (h?.kind === 'file' && published.delete(Number(fh)) && h.node.backing) {
          if (h.node.backing.refs === 1) nodes.delete(encodeNodeKey(h.node.id));
          fs.releaseBacking(h.node);
        }
      }
    });
  };
}

/**
 * A program with a "roots" map (u32 index -> u32 backing id) serves trees itself: register
 * each backing directory with FUSE_BACKING_DIR and publish its id, the root's at index 0.
 * The program then answers for the root node and hands out node ids of its own below it,
 * with the mount's cache timeout if it has a "cache_timeout" map (u32 seconds at index 0):
 * the replies it fills carry the timeouts the daemon's would.
 */
function publishRoots(device: FuseDevice, roots: BpfMap, backings: string[], timeout?: BpfMap, seconds = 1): void {
  if (timeout) {
    const v = Buffer.alloc(4);
    v.writeUInt32LE(seconds);
    timeout.update(u32Key(0), v);
  }
  if (roots.valueSize !== 4) throw new Error(`the program's "roots" map must have u32 values (backing ids), not ${roots.valueSize} bytes`);
  backings.forEach((dir, i) => {
    const fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    try {
      let id: number;
      try {
        id = device.backingOpen(fd, { dir: true });
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
        throw new Error(`cannot register ${dir} as the program's backing directory (${code})` +
          (/ELOOP/.test(code) ? ': it is on a FUSE mount, and serving it from this one would stack past the kernel\'s limit ' +
            '(or re-enter this very mount); use a directory on a regular filesystem' : ''));
      }
      const v = Buffer.alloc(4);
      v.writeUInt32LE(id);
      roots.update(u32Key(i), v);
    } finally {
      fs.closeSync(fd);
    }
  });
}

async function main(cfg: ServeConfig): Promise<void> {
  const ipc = process.send ? (process as unknown as Ipc) : undefined;
  const fail = async (e: unknown): Promise<never> => {
    const err = e as Error;
    // A verifier log can be megabytes: its end says why, and the IPC message must be sent
    // (the callback) before the process exits, or the parent only sees the exit.
    const log = e instanceof VerifierError ? e.log.slice(-(256 << 10)) : undefined;
    await new Promise<void>((r) => (ipc ? (ipc as unknown as NodeJS.Process).send!({ error: err.message, name: err.name, log }, undefined, {}, () => r()) : r()));
    process.exit(1);
  };

  let obj: LoadedObject | undefined;
  let mapNames: string[] = [];
  try {
    if (cfg.object) {
      const spec = BpfObjectSpec.open(cfg.object);
      mapNames = spec.maps;
      for (const [name, value] of Object.entries(cfg.globals ?? {})) spec.setGlobal(name, value);
      obj = spec.load();
    }
  } catch (e) {
    await fail(e);
  }
  const has = (n: string) => mapNames.includes(n);
  const counting = obj && has(STATS_MAP) && obj.map(STATS_MAP).valueSize === STATS_VALUE_SIZE;
  const publishes = obj && has('nodes') && obj.map('nodes').valueSize === NODE_SIZE;
  const roots = obj && has('roots') ? obj.map('roots') : undefined;

  let setup: Parameters<typeof mountFuse>[0]['setup'];
  let perBacking: (() => PerBacking) | undefined;
  let mode: string;
  if (cfg.backings.length > 1) {
    // Several backing directories: the policy's daemon (mirror unless told otherwise) keeps
    // them in step and, with a program, publishes each open file's backing ids (one per
    // directory) in "nodes".
    const sink = publishes ? {
      set: (nodeid: number, ids: number[]) => obj!.map('nodes').update(encodeNodeKey(nodeid), encodeNode(ids)),
      delete: (nodeid: number) => void obj!.map('nodes').delete(encodeNodeKey(nodeid)),
    } : undefined;
    const policy = cfg.policy?.policy ?? 'mirror';
    const p = cfg.policy;
    const d = p?.policy === 'stripe' ? new StripeDaemon({ backings: cfg.backings, chunk: p.chunk, sink })
      : p?.policy === 'tier' ? new TierDaemon({ backings: cfg.backings, promoteMax: p.promoteMax, sink })
      : p?.policy === 'route' ? new RouteDaemon({ backings: cfg.backings, rules: p.rules, sink })
      : p?.policy === 'union' ? new UnionDaemon({ backings: cfg.backings, sink })
      : new MirrorDaemon({ replicas: cfg.backings, sink, read: p?.policy === 'mirror' ? p.read : undefined });
    setup = d.install;
    const kernelMap = obj && has('backing_stats') ? obj.map('backing_stats') : undefined;
    perBacking = () => ({
      kernel: kernelMap ? cfg.backings.map((_, i) => decodeReplicaStats(kernelMap.lookup(u32Key(i))!)) : null,
      daemon: d.counts.map((c) => ({ ...c })),
      events: (d instanceof TierDaemon ? { promotions: d.promotions, promoteErrors: d.promoteErrors }
        : d instanceof UnionDaemon ? { copyUps: d.copyUps, whiteouts: d.whiteouts } : {}) as Record<string, number>,
    });
    mode = `${obj ? 'program' : 'userspace'}+${policy}`;
  } else if (cfg.policy?.policy === 'filter') {
    const publish = obj && publishes ? publishBackingIds(obj) : undefined;
    const deny = filterDaemon(cfg.policy.deny);
    setup = (x) => {
      publish?.(x);
      deny(x);
    };
    mode = `${obj ? 'program' : 'userspace'}+filter`;
  } else if (obj && publishes) {
    setup = publishBackingIds(obj);
    mode = 'program';
  } else {
    mode = obj ? 'program' : cfg.passthrough ? 'passthrough' : 'userspace';
  }

  let h!: FuseHandle;
  try {
    h = await mountFuse({
      backing: cfg.backings[0]!,
      mountpoint: cfg.mountpoint,
      // A program gets a connection with FUSE_PASSTHROUGH (backing ids); publishBackingIds
      // and the mirror daemon keep files off FOPEN_PASSTHROUGH.
      passthrough: cfg.passthrough || (!!obj && (publishes || !!roots || cfg.backings.length > 1)),
      // A program serving the whole tree writes, truncates and chowns through the VFS as the
      // caller: the backing filesystem clears the privileges, as the flag asks of a server.
      killPrivV2: !!roots,
      timeout: cfg.timeout,
      setup,
      // Nothing changes the passthrough filesystem's handlers: it is served in a thread of
      // its own, every request read, served and answered there (src/fuse/thread-server.ts).
      thread: !setup,
    });
  } catch (e) {
    await fail(e);
  }
  let link: Link | undefined;
  if (obj) {
    try {
      // After INIT (the kernel refuses programs on a connection before it).
      if (roots) publishRoots(h.device, roots, cfg.backings, has('cache_timeout') ? obj.map('cache_timeout') : undefined, cfg.timeout ?? 1);
      link = obj.attachStructOps(cfg.structOps!);
      attachToFuse(h.device.fd, link);
    } catch (e) {
      await h.close();
      await fail(e);
    }
  }
  const stats = (): ServeStats => ({
    daemon: h.stats(),
    kernel: !obj ? undefined : !counting ? null : decodeKernelStats((op) => {
      const k = Buffer.alloc(4);
      k.writeUInt32LE(op);
      return obj!.map(STATS_MAP).lookup(k);
    }),
    backings: perBacking?.(),
  });
  ipc?.send({ ready: true, mode, counting: obj ? !!counting : true, publishes: !!publishes });
  process.on('message', (m: { cmd?: string }) => {
    try {
      if (m?.cmd === 'stats') ipc?.send({ stats: stats(), tables: h.tables() });
      else if (m?.cmd === 'close') void h.close();
      else if (m?.cmd === 'detach' || m?.cmd === 'attach') {
        if (!link) throw new Error(`no program on ${cfg.mountpoint} to ${m.cmd}`);
        // The link and its maps stay: a detached program keeps its state for reattaching.
        if (m.cmd === 'detach') detachFromFuse(h.device.fd);
        else attachToFuse(h.device.fd, link);
        ipc?.send({ attached: m.cmd === 'attach' });
      }
    } catch (e) {
      ipc?.send({ error: (e as Error).message });
    }
  });
  process.on('disconnect', () => void h.close());
  const why = await h.closed;
  let final: ServeStats | undefined;
  try { final = stats(); } catch { /* map gone */ }
  ipc?.send({ closed: why, stats: final });
  obj?.close();
  process.exit(0);
}

void main(JSON.parse(process.argv[2] ?? '{}') as ServeConfig);
