// Passthrough: open files. In passthrough mode regular files are handed to the kernel
// (FOPEN_PASSTHROUGH + backing id) and READ/WRITE never reach us for them. Otherwise a
// plain file's READ and WRITE are served by the reader threads themselves (dev.ts: fast
// handles) unless a policy took those opcodes over; what reaches these handlers is served
// synchronously, in one turn of the event loop.
import { closeSync, fdatasyncSync, fstatSync, fsyncSync, openSync, readSync, writeSync, constants as fsc } from 'node:fs';
import { fastFh } from './dev.ts';
import * as libc from './libc.ts';
import {
  COPY_FILE_RANGE_IN, CREATE_IN, FALLOCATE_IN, FLUSH_IN, FOpen, FSYNC_IN, FUSE_FSYNC_FDATASYNC, LSEEK_IN,
  LSEEK_OUT, OPEN_IN, OPEN_OUT, Op, READ_IN, RELEASE_IN, WRITE_IN, WRITE_OUT, encodeStruct,
} from './protocol.ts';
import type { Handler, Session } from './session.ts';
import type { PtContext, FileHandleEntry } from './pt-context.ts';
import type { Node } from './nodes.ts';

// O_CREAT/O_EXCL/O_NOCTTY are the kernel's business by the time OPEN arrives; O_DIRECT
// would demand aligned buffers that node does not give us (the kernel still does direct
// I/O towards the FUSE file if the caller asked).
const STRIP = fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOCTTY | fsc.O_DIRECT;

export function registerFileOps(s: Session, c: PtContext): void {
  // A handle is fast when nobody replaced these two: the readers then do exactly what they do.
  let baseRead: Handler | undefined;
  let baseWrite: Handler | undefined;
  const fastEligible = () => !s.debug && s.handler(Op.READ) === baseRead && s.handler(Op.WRITE) === baseWrite;

  const openReply = (node: Node, fd: number): Buffer => {
    const passthrough = c.opts.passthrough && fstatSync(fd).isFile();
    const fast = !passthrough && fastEligible();
    const h: FileHandleEntry = { kind: 'file', fd, node, passthrough, fast };
    let backingId = 0;
    if (passthrough) backingId = c.backingFor(node, fd);
    const id = c.addHandle(h, fast ? fastFh(fd) : undefined);
    return encodeStruct(OPEN_OUT, { fh: id, open_flags: passthrough ? FOpen.PASSTHROUGH : 0, backing_id: backingId });
  };

  s.on(Op.OPEN, (req, b) => {
    const { flags } = b.struct(OPEN_IN);
    const node = c.nodes.get(req.nodeid);
    const fd = openSync(c.nodePath(req.nodeid), flags & ~STRIP);
    try {
      return openReply(node, fd);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  });

  s.on(Op.CREATE, (req, b) => {
    const a = b.struct(CREATE_IN);
    const { rel, abs } = c.child(req.nodeid, b.cstring());
    const fd = openSync(abs, (a.flags & ~(fsc.O_NOCTTY | fsc.O_DIRECT)) | fsc.O_CREAT, a.mode & 0o7777);
    let node: Node | undefined;
    try {
      c.fixNew(abs, a.mode, req);
      const r = c.entryAt(rel, abs, fd);
      node = r.node;
      return [r.entry, openReply(node, fd)];
    } catch (e) {
      // The kernel never sees this entry, so it will never FORGET the reference we took.
      if (node) c.nodes.forget(node.id, 1);
      closeSync(fd);
      throw e;
    }
  });

  baseRead = (_req, b) => {
    const a = b.numbers(READ_IN);
    const h = c.file(a.fh);
    const buf = Buffer.allocUnsafe(a.size);
    return buf.subarray(0, readSync(h.fd, buf, 0, a.size, a.offset));
  };
  s.on(Op.READ, baseRead);

  baseWrite = (_req, b) => {
    const a = b.numbers(WRITE_IN);
    const h = c.file(a.fh);
    const data = b.bytes(a.size);
    let done = 0;
    // A short write to a regular file only happens on ENOSPC-like conditions; retry so
    // the kernel sees either everything or the error.
    while (done < data.length) {
      const n = writeSync(h.fd, data, done, data.length - done, a.offset + done);
      if (n === 0) break;
      done += n;
    }
    return encodeStruct(WRITE_OUT, { size: done });
  };
  s.on(Op.WRITE, baseWrite);

  s.on(Op.FLUSH, (_req, b) => {
    // Nothing is buffered here; close-time errors come from RELEASE's close. Validate the handle.
    c.file(b.numbers(FLUSH_IN).fh);
  });

  s.on(Op.RELEASE, (_req, b) => {
    const a = b.numbers(RELEASE_IN);
    const h = c.dropHandle(a.fh);
    if (!h || h.kind !== 'file') return;
    if (h.passthrough) c.releaseBacking(h.node);
    // The kernel sends RELEASE after the last READ/WRITE on the handle was answered, so no
    // reader thread still uses this fd (or a later file that gets its number).
    closeSync(h.fd);
  });

  s.on(Op.FSYNC, (_req, b) => {
    const a = b.numbers(FSYNC_IN);
    const h = c.file(a.fh);
    if (a.fsync_flags & FUSE_FSYNC_FDATASYNC) fdatasyncSync(h.fd);
    else fsyncSync(h.fd);
  });

  s.on(Op.FALLOCATE, (_req, b) => {
    const a = b.struct(FALLOCATE_IN);
    libc.fallocate(c.file(a.fh).fd, a.mode, a.offset, a.length);
  });

  s.on(Op.LSEEK, (_req, b) => {
    // Only SEEK_DATA/SEEK_HOLE get here; the kernel does SET/CUR/END itself. The fd's own
    // position is irrelevant to us (all I/O is positional), so moving it is harmless.
    const a = b.struct(LSEEK_IN);
    return encodeStruct(LSEEK_OUT, { offset: libc.lseek(c.file(a.fh).fd, a.offset, a.whence) });
  });

  s.on(Op.COPY_FILE_RANGE, (_req, b) => {
    const a = b.struct(COPY_FILE_RANGE_IN);
    const src = c.file(a.fh_in);
    const dst = c.file(a.fh_out);
    const n = libc.copyFileRange(src.fd, a.off_in, dst.fd, a.off_out, a.len, Number(a.flags));
    return encodeStruct(WRITE_OUT, { size: n });
  });
}
