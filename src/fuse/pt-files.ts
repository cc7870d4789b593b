// Passthrough: open files. In passthrough mode regular files are handed to the kernel
// (FOPEN_PASSTHROUGH + backing id) and READ/WRITE never reach us for them.
import fsp from 'node:fs/promises';
import { constants as fsc } from 'node:fs';
import * as libc from './libc.ts';
import {
  COPY_FILE_RANGE_IN, CREATE_IN, FALLOCATE_IN, FLUSH_IN, FOpen, FSYNC_IN, FUSE_FSYNC_FDATASYNC, LSEEK_IN,
  LSEEK_OUT, OPEN_IN, OPEN_OUT, Op, READ_IN, RELEASE_IN, WRITE_IN, WRITE_OUT, encodeStruct,
} from './protocol.ts';
import type { Session } from './session.ts';
import type { PtContext, FileHandleEntry } from './pt-context.ts';
import type { Node } from './nodes.ts';

// O_CREAT/O_EXCL/O_NOCTTY are the kernel's business by the time OPEN arrives; O_DIRECT
// would demand aligned buffers that node does not give us (the kernel still does direct
// I/O towards the FUSE file if the caller asked).
const STRIP = fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOCTTY | fsc.O_DIRECT;

export function registerFileOps(s: Session, c: PtContext): void {
  const openReply = async (node: Node, fh: fsp.FileHandle): Promise<Buffer> => {
    const st = await fh.stat();
    const passthrough = c.opts.passthrough && st.isFile();
    const h: FileHandleEntry = { kind: 'file', fh, node, passthrough };
    let backingId = 0;
    if (passthrough) backingId = c.backingFor(node, fh.fd);
    const id = c.addHandle(h);
    return encodeStruct(OPEN_OUT, { fh: id, open_flags: passthrough ? FOpen.PASSTHROUGH : 0, backing_id: backingId });
  };

  s.on(Op.OPEN, async (req, b) => {
    const { flags } = b.struct(OPEN_IN);
    const node = c.nodes.get(req.nodeid);
    const fh = await fsp.open(c.nodePath(req.nodeid), flags & ~STRIP);
    try {
      return await openReply(node, fh);
    } catch (e) {
      await fh.close();
      throw e;
    }
  });

  s.on(Op.CREATE, async (req, b) => {
    const a = b.struct(CREATE_IN);
    const { rel, abs } = c.child(req.nodeid, b.cstring());
    const fh = await fsp.open(abs, (a.flags & ~(fsc.O_NOCTTY | fsc.O_DIRECT)) | fsc.O_CREAT, a.mode & 0o7777);
    let node: Node | undefined;
    try {
      await c.fixNew(abs, a.mode, req);
      const r = c.entryNode(rel, await fh.stat({ bigint: true }));
      node = r.node;
      return [r.entry, await openReply(node, fh)];
    } catch (e) {
      // The kernel never sees this entry, so it will never FORGET the reference we took.
      if (node) c.nodes.forget(node.id, 1);
      await fh.close();
      throw e;
    }
  });

  s.on(Op.READ, async (_req, b) => {
    const a = b.struct(READ_IN);
    const h = c.file(a.fh);
    const buf = Buffer.allocUnsafe(a.size);
    const { bytesRead } = await h.fh.read(buf, 0, a.size, Number(a.offset));
    return buf.subarray(0, bytesRead);
  });

  s.on(Op.WRITE, async (_req, b) => {
    const a = b.struct(WRITE_IN);
    const h = c.file(a.fh);
    const data = b.bytes(a.size);
    let done = 0;
    // A short write to a regular file only happens on ENOSPC-like conditions; retry so
    // the kernel sees either everything or the error.
    while (done < data.length) {
      const { bytesWritten } = await h.fh.write(data, done, data.length - done, Number(a.offset) + done);
      if (bytesWritten === 0) break;
      done += bytesWritten;
    }
    return encodeStruct(WRITE_OUT, { size: done });
  });

  s.on(Op.FLUSH, (_req, b) => {
    // Nothing is buffered here; close-time errors come from RELEASE's close. Validate the handle.
    c.file(b.struct(FLUSH_IN).fh);
  });

  s.on(Op.RELEASE, async (_req, b) => {
    const a = b.struct(RELEASE_IN);
    const h = c.dropHandle(a.fh);
    if (!h || h.kind !== 'file') return;
    if (h.passthrough) c.releaseBacking(h.node);
    await h.fh.close();
  });

  s.on(Op.FSYNC, async (_req, b) => {
    const a = b.struct(FSYNC_IN);
    const h = c.file(a.fh);
    await (a.fsync_flags & FUSE_FSYNC_FDATASYNC ? h.fh.datasync() : h.fh.sync());
  });

  s.on(Op.FALLOCATE, (_req, b) => {
    const a = b.struct(FALLOCATE_IN);
    libc.fallocate(c.file(a.fh).fh.fd, a.mode, a.offset, a.length);
  });

  s.on(Op.LSEEK, (_req, b) => {
    // Only SEEK_DATA/SEEK_HOLE get here; the kernel does SET/CUR/END itself. The fd's own
    // position is irrelevant to us (all I/O is positional), so moving it is harmless.
    const a = b.struct(LSEEK_IN);
    return encodeStruct(LSEEK_OUT, { offset: libc.lseek(c.file(a.fh).fh.fd, a.offset, a.whence) });
  });

  s.on(Op.COPY_FILE_RANGE, (_req, b) => {
    const a = b.struct(COPY_FILE_RANGE_IN);
    const src = c.file(a.fh_in);
    const dst = c.file(a.fh_out);
    const n = libc.copyFileRange(src.fh.fd, a.off_in, dst.fh.fd, a.off_out, a.len, Number(a.flags));
    return encodeStruct(WRITE_OUT, { size: n });
  });
}
