// A stacked filesystem mirroring one backing directory: composes the op groups over a
// shared context and picks the INIT flags such a filesystem wants.
import fs from 'node:fs';
import type { FuseDevice } from './dev.ts';
import { InitFlag, Op } from './protocol.ts';
import { NO_REPLY, Session } from './session.ts';
import { PtContext, type PassthroughOptions } from './pt-context.ts';
import { registerNamespaceOps } from './pt-namespace.ts';
import { registerFileOps } from './pt-files.ts';
import { registerDirOps } from './pt-dirs.ts';

export const PASSTHROUGH_FS_FLAGS =
  InitFlag.ASYNC_READ | InitFlag.BIG_WRITES | InitFlag.ATOMIC_O_TRUNC | InitFlag.DO_READDIRPLUS |
  InitFlag.READDIRPLUS_AUTO | InitFlag.PARALLEL_DIROPS | InitFlag.MAX_PAGES | InitFlag.AUTO_INVAL_DATA |
  InitFlag.INIT_EXT | InitFlag.SETXATTR_EXT;

export interface PassthroughFs {
  ctx: PtContext;
  /** Call after the device ends: closes every backing fd still open. */
  dispose(): void;
}

export async function createPassthroughFs(
  session: Session,
  dev: FuseDevice,
  backing: string,
  opts: PassthroughOptions,
): Promise<PassthroughFs> {
  const root = fs.realpathSync(backing);
  const st = fs.lstatSync(root, { bigint: true });
  if (!st.isDirectory()) throw new Error(`backing ${backing} is not a directory`);
  const ctx = new PtContext(root, st, session, dev, opts);
  registerNamespaceOps(session, ctx);
  registerFileOps(session, ctx);
  registerDirOps(session, ctx);
  // We cannot cancel a syscall already running; ignoring INTERRUPT is allowed (the
  // original request then completes normally).
  session.on(Op.INTERRUPT, () => NO_REPLY);
  session.on(Op.DESTROY, () => undefined);
  return { ctx, dispose: () => ctx.closeAll() };
}
