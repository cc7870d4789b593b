// Passthrough: names, attributes and xattrs. Every op maps to the same syscall on the
// backing path of the node; errors travel back unchanged as errno. Synchronous calls:
// a request is served in one turn of the event loop (pt-context.ts).
import { accessSync, chmodSync, fchmodSync, fchownSync, fstatSync, ftruncateSync, futimesSync, lchownSync, linkSync, mkdirSync, readlinkSync, renameSync, rmdirSync, statfsSync, symlinkSync, truncateSync, unlinkSync } from 'node:fs';
import * as libc from './libc.ts';
import {
  ACCESS_IN, BATCH_FORGET_IN, FAttr, FORGET_IN, FORGET_ONE, FUSE_GETATTR_FH, GETATTR_IN, GETXATTR_IN,
  GETXATTR_OUT, InitFlag, LINK_IN, MKDIR_IN, MKNOD_IN, Op, RENAME2_IN, RENAME_IN, SETATTR_IN,
  SETXATTR_IN, SETXATTR_IN_COMPAT, STATFS_OUT, decodeStruct, encodeStruct,
} from './protocol.ts';
import { Errno, NO_REPLY, type Session } from './session.ts';
import { toKstatfs } from './attr.ts';
import type { PtContext } from './pt-context.ts';

export function registerNamespaceOps(s: Session, c: PtContext): void {
  s.on(Op.LOOKUP, (req, b) => {
    const { rel, abs } = c.child(req.nodeid, b.cstring());
    return c.lookupEntry(rel, abs);
  });

  s.on(Op.FORGET, (req, b) => {
    c.nodes.forget(req.nodeid, Number(b.struct(FORGET_IN).nlookup));
    return NO_REPLY;
  });

  s.on(Op.BATCH_FORGET, (_req, b) => {
    const { count } = b.struct(BATCH_FORGET_IN);
    const list = b.bytes(count * FORGET_ONE.size);
    for (let i = 0; i < count; i++) {
      const f = decodeStruct(FORGET_ONE, list, i * FORGET_ONE.size);
      c.nodes.forget(Number(f.nodeid), Number(f.nlookup));
    }
    return NO_REPLY;
  });

  s.on(Op.GETATTR, (req, b) => {
    const a = b.numbers(GETATTR_IN);
    let h = a.getattr_flags & FUSE_GETATTR_FH ? c.handles.get(a.fh) : undefined;
    // fstat(2) on a FUSE file arrives without a handle; once the last name is unlinked the
    // only way to the inode is any handle still open on it.
    if (!h && c.nodes.get(req.nodeid).paths.length === 0) h = c.anyOpenFile(req.nodeid);
    return c.getattrReply(req.nodeid, h?.kind === 'file' ? h.fd : undefined);
  });

  s.on(Op.SETATTR, (req, b) => {
    const a = b.numbers(SETATTR_IN); // lock_owner, the one field beyond 2^53, is not used
    const node = c.nodes.get(req.nodeid);
    let h = a.valid & FAttr.FH ? c.handles.get(a.fh) : undefined;
    if (!h && node.paths.length === 0) h = c.anyOpenFile(req.nodeid);
    const fd = h?.kind === 'file' ? h.fd : undefined;
    const abs = node.paths.length ? c.abs(node.paths[0]!) : null;
    if (fd === undefined && !abs) throw new Errno('ENOENT', 'no name and no handle');
    if (a.valid & FAttr.MODE) {
      if (fd !== undefined) fchmodSync(fd, a.mode & 0o7777);
      else chmodSync(abs!, a.mode & 0o7777);
    }
    if (a.valid & (FAttr.UID | FAttr.GID)) {
      const uid = a.valid & FAttr.UID ? a.uid : -1;
      const gid = a.valid & FAttr.GID ? a.gid : -1;
      if (fd !== undefined) fchownSync(fd, uid, gid);
      else lchownSync(abs!, uid, gid);
    }
    if (a.valid & FAttr.SIZE) {
      if (fd !== undefined) ftruncateSync(fd, a.size);
      else truncateSync(abs!, a.size);
    }
    if (a.valid & (FAttr.ATIME | FAttr.MTIME)) {
      const at: libc.TimeSpec = !(a.valid & FAttr.ATIME) ? 'omit' : a.valid & FAttr.ATIME_NOW ? 'now' : { sec: a.atime, nsec: a.atimensec };
      const mt: libc.TimeSpec = !(a.valid & FAttr.MTIME) ? 'omit' : a.valid & FAttr.MTIME_NOW ? 'now' : { sec: a.mtime, nsec: a.mtimensec };
      if (abs) libc.utimensat(abs, at, mt);
      else {
        // Unlinked but open: node's futimes takes seconds, so nanoseconds are rounded.
        const cur = fstatSync(fd!);
        const secs = (t: libc.TimeSpec, old: Date) =>
          t === 'now' ? Date.now() / 1000 : t === 'omit' ? old.getTime() / 1000 : Number(t.sec) + t.nsec / 1e9;
        futimesSync(fd!, secs(at, cur.atime), secs(mt, cur.mtime));
      }
    }
    return fd !== undefined ? c.getattrReply(req.nodeid, fd) : c.attrReplyAt(req.nodeid, abs!);
  });

  s.on(Op.READLINK, (req) => readlinkSync(c.nodePath(req.nodeid), { encoding: 'buffer' }));

  s.on(Op.SYMLINK, (req, b) => {
    const name = b.cstring();
    const target = b.cstringBytes();
    const { rel, abs } = c.child(req.nodeid, name);
    symlinkSync(target, abs);
    c.fixNew(abs, null, req, true);
    return c.entryAt(rel, abs).entry;
  });

  s.on(Op.MKNOD, (req, b) => {
    const a = b.struct(MKNOD_IN);
    const { rel, abs } = c.child(req.nodeid, b.cstring());
    libc.mknod(abs, a.mode, a.rdev);
    c.fixNew(abs, a.mode, req);
    return c.entryAt(rel, abs).entry;
  });

  s.on(Op.MKDIR, (req, b) => {
    const a = b.struct(MKDIR_IN);
    const { rel, abs } = c.child(req.nodeid, b.cstring());
    mkdirSync(abs, { mode: a.mode & 0o7777 });
    c.fixNew(abs, a.mode, req);
    return c.entryAt(rel, abs).entry;
  });

  s.on(Op.UNLINK, (req, b) => {
    const { rel, abs } = c.child(req.nodeid, b.cstring());
    unlinkSync(abs);
    c.nodes.removePath(rel);
  });

  s.on(Op.RMDIR, (req, b) => {
    const { rel, abs } = c.child(req.nodeid, b.cstring());
    rmdirSync(abs);
    c.nodes.removePath(rel);
  });

  const rename = (parent: number, newdir: number, oldName: string, newName: string, flags: number) => {
    const from = c.child(parent, oldName);
    const to = c.child(newdir, newName);
    if (flags === 0) renameSync(from.abs, to.abs);
    else libc.renameat2(from.abs, to.abs, flags);
    if (flags & libc.RENAME_EXCHANGE) {
      c.nodes.exchangePaths(from.rel, to.rel);
    } else {
      c.nodes.removePath(to.rel);
      c.nodes.renamePath(from.rel, to.rel);
    }
  };

  s.on(Op.RENAME, (req, b) => {
    const a = b.struct(RENAME_IN);
    const oldName = b.cstring();
    rename(req.nodeid, Number(a.newdir), oldName, b.cstring(), 0);
  });

  s.on(Op.RENAME2, (req, b) => {
    const a = b.struct(RENAME2_IN);
    const oldName = b.cstring();
    rename(req.nodeid, Number(a.newdir), oldName, b.cstring(), a.flags);
  });

  s.on(Op.LINK, (req, b) => {
    const a = b.struct(LINK_IN);
    const { rel, abs } = c.child(req.nodeid, b.cstring());
    linkSync(c.nodePath(Number(a.oldnodeid)), abs);
    return c.entryAt(rel, abs).entry;
  });

  s.on(Op.STATFS, (req) => {
    const st = statfsSync(c.nodes.get(req.nodeid).paths.length ? c.nodePath(req.nodeid) : c.root, { bigint: true });
    return encodeStruct(STATFS_OUT, { st: toKstatfs(st) });
  });

  s.on(Op.ACCESS, (req, b) => {
    accessSync(c.nodePath(req.nodeid), b.struct(ACCESS_IN).mask);
  });

  // ---- extended attributes ----

  s.on(Op.SETXATTR, (req, b) => {
    const ext = ((s.negotiated?.flags ?? 0n) & InitFlag.SETXATTR_EXT) !== 0n;
    const a = ext ? b.struct(SETXATTR_IN) : b.struct(SETXATTR_IN_COMPAT);
    const name = b.cstring();
    libc.lsetxattr(c.nodePath(req.nodeid), name, b.bytes(a.size), a.flags);
  });

  // Size 0 asks "how big is it"; otherwise the value must fit or the answer is ERANGE,
  // which lgetxattr/llistxattr produce themselves.
  s.on(Op.GETXATTR, (req, b) => {
    const { size } = b.struct(GETXATTR_IN);
    const path = c.nodePath(req.nodeid);
    const name = b.cstring();
    if (size === 0) {
      const n = libc.lgetxattrOrErrno(path, name, null);
      return n < 0 ? n : encodeStruct(GETXATTR_OUT, { size: n });
    }
    const buf = Buffer.alloc(size);
    const n = libc.lgetxattrOrErrno(path, name, buf);
    return n < 0 ? n : buf.subarray(0, n);
  });

  s.on(Op.LISTXATTR, (req, b) => {
    const { size } = b.struct(GETXATTR_IN);
    const path = c.nodePath(req.nodeid);
    if (size === 0) return encodeStruct(GETXATTR_OUT, { size: libc.llistxattr(path, null) });
    const buf = Buffer.alloc(size);
    return buf.subarray(0, libc.llistxattr(path, buf));
  });

  s.on(Op.REMOVEXATTR, (req, b) => {
    libc.lremovexattr(c.nodePath(req.nodeid), b.cstring());
  });
}
