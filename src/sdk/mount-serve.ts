// The one FUSE daemon: what mount() starts, as its own process (the caller does I/O on
// the mount; a FUSE daemon must not share its event loop with synchronous clients):
//   node --import tsx src/sdk/mount-serve.ts '<json ServeConfig>'   (or dist/mount-serve.js)
// The messages it exchanges with mount() are daemon-ipc.ts's; the maps it shares with a
// program are contract.ts's. Losing the parent (IPC disconnect) unmounts: no orphan mounts.
import fs from 'node:fs';
import { decodeStruct } from '../fuse/layout.ts';
import { OPEN_OUT, Op, RELEASE_IN } from '../fuse/protocol.ts';
import { mountFuse, type FuseHandle } from '../fuse/index.ts';
import type { Session, Handler } from '../fuse/session.ts';
import type { PtContext, FileHandleEntry } from '../fuse/pt-context.ts';
import { BpfObjectSpec, type LoadedObject } from '../bpf/object.ts';
import type { FuseDevice } from '../fuse/dev.ts';
import { attachToFuse, detachFromFuse } from '../bpf/attach.ts';
import type { Link } from '../bpf/object.ts';
import { VerifierError } from '../bpf/errors.ts';
import { ReplicasDaemon } from '../policy/runtime/replicas.ts';
import { LayoutDaemon } from '../policy/runtime/layout.ts';
import { accessHooks, layerHooks, layoutHooks, placementHooks, replicaHooks, spreadHooks, tierHooks } from '../policy/runtime/functions.ts';
import { TierDaemon } from '../policy/runtime/tiers.ts';
import { PlacementDaemon } from '../policy/runtime/placement.ts';
import { SpreadDaemon } from '../policy/runtime/spread.ts';
import { UnionDaemon } from '../policy/runtime/layers.ts';
import { accessDaemon } from '../policy/runtime/access.ts';
import type { PolicySpec } from '../policy/spec.ts';
import { basename } from 'node:path';
import { decodeBackingStats, encodeNode, encodeNodeKey, programMaps, u32Key, u32Value, type MapLike, type ProgramMaps } from './contract.ts';
import { decodeKernelStats, type PerBacking } from './stats.ts';
import type { DaemonCommand, DaemonMessage, ServeConfig, ServeStats } from './daemon-ipc.ts';

export type { ServeConfig, ServeStats } from './daemon-ipc.ts';

interface Ipc { send(m: DaemonMessage): void }

/**
 * One backing directory with a program that has a "nodes" map: register a backing id per
 * open regular file (FUSE_DEV_IOC_BACKING_OPEN, no FOPEN_PASSTHROUGH) and publish it as
 * nodeid -> { backing[0] = id, nr = 1 } (struct fuse_kfunc_node); withdraw it at the last
 * RELEASE. The passthrough ops keep serving everything that is sent up.
 */
function publishBackingIds(nodes: MapLike) {
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
function publishRoots(device: FuseDevice, roots: MapLike, backings: string[], timeout?: MapLike, seconds = 1): void {
  timeout?.update(u32Key(0), u32Value(seconds));
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
      roots.update(u32Key(i), u32Value(id));
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
    const m: DaemonMessage = { error: err.message, name: err.name, log };
    await new Promise<void>((r) => (ipc ? (ipc as unknown as NodeJS.Process).send!(m, undefined, {}, () => r()) : r()));
    process.exit(1);
  };

  let obj: LoadedObject | undefined;
  let maps: ProgramMaps = {};
  try {
    if (cfg.object) {
      const spec = BpfObjectSpec.open(cfg.object);
      for (const [name, value] of Object.entries(cfg.globals ?? {})) spec.setGlobal(name, value);
      obj = spec.load();
      const loaded = obj;
      maps = programMaps(spec.maps, (n) => loaded.map(n), basename(cfg.object));
    }
  } catch (e) {
    await fail(e);
  }
  const counting = !!maps.fuse_kfunc_stats;
  const publishes = !!maps.nodes;
  const roots = maps.roots;

  // Fault injection ({cmd:'fault'}): backing directories whose ids files opened from now
  // on do not get (the program finds no backing file there).
  const faulty = new Set<number>();
  let setup: Parameters<typeof mountFuse>[0]['setup'];
  let perBacking: (() => PerBacking) | undefined;
  let mode: string;
  // Fault injection needs ids the daemon publishes: not there when the program holds the names.
  let faults = true;
  if (roots && cfg.backings.length > 1) {
    // A policy program serving names itself (names.bpf.h): every backing directory is a
    // root, the daemon answers INIT and what the program leaves (nothing, while attached).
    const kernelMap = maps.backing_stats;
    perBacking = () => ({
      kernel: kernelMap ? cfg.backings.map((_, i) => decodeBackingStats(kernelMap.lookup(u32Key(i))!)) : null,
      daemon: cfg.backings.map(() => ({ reads: 0, readBytes: 0, writes: 0, writeBytes: 0, errors: 0, cached: 0 })),
      events: {},
    });
    faults = false;
    mode = `program+${cfg.module?.name ?? 'tree'}`;
  } else if (cfg.module?.family === 'access') {
    // One backing directory served as it is, open files published to the program, and the
    // policy's checks around what reaches the daemon.
    const publish = maps.nodes ? publishBackingIds(maps.nodes) : undefined;
    const access = accessDaemon({ name: cfg.module.name, hooks: accessHooks(cfg.module), context: cfg.module.context });
    setup = (x) => {
      publish?.(x);
      access(x);
    };
    mode = `${obj ? 'program' : 'userspace'}+${cfg.module.name}`;
  } else if (cfg.backings.length > 1 || cfg.module) {
    // Several backing directories: the policy's daemon (mirror unless told otherwise) keeps
    // them in step and, with a program, publishes each open file's backing ids (one per
    // directory) in "nodes".
    const nodes = maps.nodes;
    const sink = nodes ? {
      set: (nodeid: number, ids: number[]) => nodes.update(encodeNodeKey(nodeid), encodeNode(ids.map((id, i) => (faulty.has(i) ? 0 : id)))),
      delete: (nodeid: number) => void nodes.delete(encodeNodeKey(nodeid)),
    } : undefined;
    const policy = cfg.module?.name ?? 'mirror';
    const m = cfg.module;
    const d = m?.family === 'layout' ? new LayoutDaemon({ name: m.name, minBackings: m.minBackings, hooks: layoutHooks(m), context: m.context, backings: cfg.backings, sink })
      : m?.family === 'replicas' ? new ReplicasDaemon({ name: m.name, replicas: cfg.backings, hooks: replicaHooks(m), context: m.context, sink })
      : m?.family === 'tiers' ? new TierDaemon({ name: m.name, backings: cfg.backings, hooks: tierHooks(m), context: m.context, sink })
      : m?.family === 'placement' ? new PlacementDaemon({ name: m.name, backings: cfg.backings, hooks: placementHooks(m), context: m.context, sink })
      : m?.family === 'spread' ? new SpreadDaemon({ name: m.name, backings: cfg.backings, hooks: spreadHooks(m), context: m.context, sink })
      : m?.family === 'layers' ? new UnionDaemon({ name: m.name, backings: cfg.backings, hooks: layerHooks(m), context: m.context, sink })
      : undefined;
    if (!d) throw new Error(`no daemon for ${m ? `the ${m.family} family` : `the ${policy} policy`}: mount() passes a module for several backing directories`);
    setup = d.install;
    const kernelMap = maps.backing_stats;
    perBacking = () => ({
      kernel: kernelMap ? cfg.backings.map((_, i) => decodeBackingStats(kernelMap.lookup(u32Key(i))!)) : null,
      daemon: d.counts.map((c) => ({ ...c })),
      events: (d instanceof TierDaemon ? { promotions: d.promotions, promoteErrors: d.promoteErrors }
        : d instanceof UnionDaemon ? { copyUps: d.copyUps, whiteouts: d.whiteouts } : {}) as Record<string, number>,
    });
    mode = `${obj ? 'program' : 'userspace'}+${policy}`;
  } else if (maps.nodes) {
    setup = publishBackingIds(maps.nodes);
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
      debug: cfg.debug,
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
      if (roots) publishRoots(h.device, roots, cfg.backings, maps.cache_timeout, cfg.timeout ?? 1);
      link = obj.attachStructOps(cfg.structOps!);
      attachToFuse(h.device.fd, link);
    } catch (e) {
      await h.close();
      await fail(e);
    }
  }
  const opStats = maps.fuse_kfunc_stats;
  const stats = (): ServeStats => ({
    daemon: h.stats(),
    kernel: !obj ? undefined : !opStats ? null : decodeKernelStats((op) => opStats.lookup(u32Key(op))),
    backings: perBacking?.(),
  });
  ipc?.send({ ready: true, mode, counting: obj ? counting : true, publishes });
  const command = (m: DaemonCommand): DaemonMessage | undefined => {
    switch (m.cmd) {
      case 'stats': return { stats: stats(), tables: h.tables() };
      case 'close': void h.close(); return undefined;
      case 'detach': case 'attach':
        if (!link) throw new Error(`no program on ${cfg.mountpoint} to ${m.cmd}`);
        // The link and its maps stay: a detached program keeps its state for reattaching.
        if (m.cmd === 'detach') detachFromFuse(h.device.fd);
        else attachToFuse(h.device.fd, link);
        return { attached: m.cmd === 'attach' };
      case 'fault':
        if (!faults) throw new Error('fault: the program holds this mount\'s names and files itself; fault injection withholds ids the daemon publishes (mount with names served by the daemon)');
        if (!perBacking || !Number.isInteger(m.backing) || m.backing < 0 || m.backing >= cfg.backings.length) {
          throw new Error(`fault: backing ${m.backing} is not one of this mount's ${cfg.backings.length} backing directories ` +
            '(fault injection is for mounts of several)');
        }
        faulty.add(m.backing);
        return { faulted: m.backing };
      default:
        throw new Error(`unknown daemon command ${JSON.stringify(m)}`);
    }
  };
  process.on('message', (m: DaemonCommand) => {
    try {
      const r = command(m);
      if (r) ipc?.send(r);
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
