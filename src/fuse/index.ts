// Public entry: mount a passthrough FUSE filesystem served by this process.
import { FuseDevice, type ThreadServerMessage } from './dev.ts';
import { InitFlag } from './protocol.ts';
import { Session, type Negotiated } from './session.ts';
import { PASSTHROUGH_FS_FLAGS, createPassthroughFs } from './passthrough-fs.ts';
import type { PtContext } from './pt-context.ts';
import { traceRows, writeTrace, type TraceRow } from './trace.ts';

export { FuseDevice } from './dev.ts';
export { Session, NO_REPLY, type Negotiated, type Handler } from './session.ts';
export * as protocol from './protocol.ts';
export type { PtContext } from './pt-context.ts';

export interface MountFuseOptions {
  /** Directory whose contents the mount mirrors. */
  backing: string;
  mountpoint: string;
  /** Hand regular files to the kernel (FOPEN_PASSTHROUGH); needs root and kernel ≥ 6.9. */
  passthrough?: boolean;
  /**
   * Negotiate FUSE_HANDLE_KILLPRIV_V2: the server, not the kernel, clears S_ISUID, S_ISGID
   * and security.capability on write, truncate and chown. Only for a server that does: a
   * program serving every file through the VFS as the caller (tree.bpf.c), whose backing
   * filesystem clears them itself. The kernel then skips its own check, a GETXATTR of
   * security.capability before every write.
   */
  killPrivV2?: boolean;
  debug?: boolean;
  /** Seconds the kernel caches names/attributes (default 1). */
  timeout?: number;
  /** Max request payload in 4 KiB pages (default 256 = 1 MiB writes). */
  maxPages?: number;
  /** Concurrent blocking reads on /dev/fuse (default 2). */
  readers?: number;
  /** Unmount on SIGINT/SIGTERM, then re-raise the signal (default true). */
  handleSignals?: boolean;
  /** How long to wait for the kernel's INIT (default 30 s: TCG guests are slow). */
  initTimeoutMs?: number;
  /**
   * Time every request's stages (reader thread -> main thread, handler, reply) and write
   * them, per opcode in µs per request, to this file as JSON when the connection ends
   * (default: $FUSE_KFUNC_TRACE). Costs a clock read per stage.
   */
  traceFile?: string;
  /**
   * Serve in one thread of its own (thread-server.ts), the node table with it: no request
   * hops to this thread's event loop. For the passthrough filesystem as it is: excludes
   * `setup` (which changes handlers here) and leaves `session` undefined.
   */
  thread?: boolean;
  /**
   * Runs after the passthrough ops are registered and before the first request is read:
   * override opcodes with `session.on(op, handler)` (e.g. a userspace policy), or use
   * `device.fd` (e.g. to attach a BPF program to this connection).
   */
  setup?: (x: { session: Session; device: FuseDevice; fs: PtContext }) => void | Promise<void>;
}

export interface FuseHandle {
  readonly mountpoint: string;
  /** The connection: its fd, backingOpen/backingClose (FUSE_DEV_IOC_BACKING_*). */
  readonly device: FuseDevice;
  /** undefined when served by a thread of its own (`thread`). */
  readonly session: Session | undefined;
  readonly negotiated: Negotiated;
  /** Requests received, by opcode name (e.g. { LOOKUP: 3, GETATTR: 5 }). */
  stats(): Record<string, number>;
  /** Live nodeids and open handles, for leak checks; replies the kernel refused as unknown
   *  (FuseDevice.staleReplies). */
  tables(): { nodes: number; handles: number; staleReplies: number };
  /** Unmounts (without blocking the event loop) and resolves once the server stopped. */
  close(): Promise<void>;
  /** Resolves with the reason when the connection ends for any reason (incl. external umount). */
  readonly closed: Promise<string>;
}

export async function mountFuse(opts: MountFuseOptions): Promise<FuseHandle> {
  if (opts.thread && opts.setup) throw new Error('mountFuse: `thread` serves the passthrough filesystem as it is; `setup` needs this thread');
  const maxPages = opts.maxPages ?? 256;
  const timeout = opts.timeout ?? 1;
  const dev = FuseDevice.mount({
    mountpoint: opts.mountpoint,
    source: opts.backing,
    readBufferSize: Session.readBufferSize(maxPages),
    readers: opts.readers ?? 2,
  });
  const traceFile = opts.traceFile ?? (process.env.FUSE_KFUNC_TRACE || undefined);
  const serverTrace: TraceRow[] = [];
  let session: Session | undefined;
  let fsys: Awaited<ReturnType<typeof createPassthroughFs>> | undefined;
  let initDone: Promise<Negotiated>;
  if (opts.thread) {
    initDone = new Promise((resolve, reject) => {
      dev.serverMessage = (m: ThreadServerMessage) => {
        if ('trace' in m) serverTrace.push(...(m.trace as TraceRow[]));
        else if (m.init.ok) resolve(m.init.negotiated as Negotiated);
        else reject(new Error(m.init.error));
      };
      void dev.ended.then((why) => reject(new Error(`FUSE connection ended before INIT: ${why}`)));
    });
    initDone.catch(() => {});
    dev.start(() => {}, {
      trace: !!traceFile,
      server: { backing: opts.backing, passthrough: !!opts.passthrough, killPrivV2: !!opts.killPrivV2, timeout, maxPages, debug: !!opts.debug },
    });
  } else {
    const s = (session = new Session(dev, {
      maxPages,
      wantFlags: PASSTHROUGH_FS_FLAGS | (opts.passthrough ? InitFlag.PASSTHROUGH : 0n) |
        (opts.killPrivV2 ? InitFlag.HANDLE_KILLPRIV_V2 : 0n),
      requirePassthrough: !!opts.passthrough,
      debug: opts.debug,
    }));
    try {
      fsys = await createPassthroughFs(s, dev, opts.backing, {
        passthrough: !!opts.passthrough,
        entryTimeout: timeout,
        attrTimeout: timeout,
      });
      await opts.setup?.({ session: s, device: dev, fs: fsys.ctx });
    } catch (e) {
      await dev.dispose();
      throw e;
    }
    initDone = s.initDone;
    dev.start(s.receive, { trace: !!traceFile });
  }

  const closed = dev.ended.then(async (why) => {
    session?.failInit(new Error(`FUSE connection ended before INIT: ${why}`));
    if (traceFile) {
      writeTrace(traceFile, [...(session ? traceRows(session.times, 'main') : serverTrace), ...traceRows(dev.readerTimesByOp(), 'reader')]);
    }
    fsys?.dispose();
    removeSignals();
    return why;
  });

  const onSignal = (sig: NodeJS.Signals) => {
    removeSignals();
    void dev.unmount().then(() => {
      // Our handler replaced the default action; restore it if nobody else listens.
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    });
  };
  const removeSignals = () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
  if (opts.handleSignals !== false) {
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }

  let negotiated: Negotiated;
  const initTimeout = opts.initTimeoutMs ?? 30_000;
  let timer: NodeJS.Timeout | undefined;
  try {
    negotiated = await Promise.race([
      initDone,
      new Promise<never>((_, rej) => (timer = setTimeout(() => rej(new Error(`no FUSE INIT within ${initTimeout} ms`)), initTimeout))),
    ]);
  } catch (e) {
    await dev.unmount();
    await closed;
    throw e;
  } finally {
    clearTimeout(timer);
  }

  return {
    mountpoint: opts.mountpoint,
    device: dev,
    session,
    negotiated,
    stats: () => {
      const out: Record<string, number> = session ? Object.fromEntries(session.counts) : {};
      for (const [op, n] of Object.entries(dev.servedByReaders())) out[op] = (out[op] ?? 0) + n;
      return out;
    },
    tables: () => ({
      ...(fsys ? { nodes: fsys.ctx.nodes.size, handles: fsys.ctx.handles.size } : dev.serverTables()),
      staleReplies: dev.staleReplies(),
    }),
    close: async () => {
      await dev.unmount();
      await closed;
    },
    closed,
  };
}
