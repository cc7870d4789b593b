// A whole FUSE server in one thread: the reader thread that dev.ts starts with `server`
// imports this module and hands it every request it does not serve itself (the fast READ
// and WRITE). The node and handle tables live in that thread, so a LOOKUP or a GETATTR is
// read, served and answered without leaving it: no hop to the main thread and back, which
// cost a request about as much as serving it (docs/fuse-server.md: the request path).
// The main thread keeps its event loop for the daemon's own work (IPC, BPF maps) and sees
// this one through shared counters (FuseDevice.servedByReaders, serverTables).
//
// Only for filesystems whose handlers are synchronous (the passthrough filesystem as it is;
// a policy's asynchronous handlers need the main thread's event loop, index.ts: mountFuse).
import { parentPort } from 'node:worker_threads';
import { FuseDevice, type ThreadServerConfig } from './dev.ts';
import { InitFlag } from './protocol.ts';
import { Session } from './session.ts';
import { PASSTHROUGH_FS_FLAGS, createPassthroughFs } from './passthrough-fs.ts';
import { traceRows } from './trace.ts';

type ServerData = ThreadServerConfig & { tables: SharedArrayBuffer; times: SharedArrayBuffer | null; counts: SharedArrayBuffer };

/** Called once in the server thread; returns what serves one request (its bytes, and when a
 *  reader got it when tracing), plus `end` for when the connection is gone. */
export async function threadServer(cfg: ServerData, fd: number) {
  const dev = FuseDevice.forThread(fd, cfg.counts);
  const session = new Session(dev, {
    maxPages: cfg.maxPages,
    wantFlags: PASSTHROUGH_FS_FLAGS | (cfg.passthrough ? InitFlag.PASSTHROUGH : 0n) | (cfg.killPrivV2 ? InitFlag.HANDLE_KILLPRIV_V2 : 0n),
    requirePassthrough: cfg.passthrough,
    debug: cfg.debug,
  });
  const fsys = await createPassthroughFs(session, dev, cfg.backing, {
    passthrough: cfg.passthrough, entryTimeout: cfg.timeout, attrTimeout: cfg.timeout,
  });
  const tables = new Int32Array(cfg.tables);
  let initSeen = false;
  const serve = (buf: Buffer, readAt?: number): void | Promise<void> => {
    const pending = session.receive(buf, readAt);
    if (!initSeen && (session.negotiated || session.initError)) {
      initSeen = true;
      // Posted now: this thread's loop does not yield, so a .then() on initDone would wait.
      parentPort!.postMessage({ init: session.negotiated ? { ok: true, negotiated: session.negotiated } : { ok: false, error: session.initError!.message } });
    }
    Atomics.store(tables, 0, fsys.ctx.nodes.size);
    Atomics.store(tables, 1, fsys.ctx.handles.size);
    return pending;
  };
  serve.end = () => {
    if (cfg.times) parentPort!.postMessage({ trace: traceRows(session.times, 'server') });
    fsys.dispose();
  };
  return serve;
}
