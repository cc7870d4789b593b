// Passthrough: directory handles and listings. A listing is a snapshot of names taken at
// offset 0; entry i carries off=i+1, so a later READDIR resumes exactly where the kernel
// stopped even if the directory changed in between.
import { closeSync, fdatasyncSync, fsyncSync, openSync, readdirSync, constants as fsc, type BigIntStats } from 'node:fs';
import {
  FSYNC_IN, FUSE_FSYNC_FDATASYNC, OPEN_IN, OPEN_OUT, Op, READ_IN, RELEASE_IN, direntSize, direntplusSize,
  encodeDirentInto, encodeDirentplusInto, encodeStruct, type Request,
} from './protocol.ts';
import { Errno, type Session } from './session.ts';
import type { PtContext } from './pt-context.ts';
import type { BodyReader } from './protocol.ts';
import { dtype, statKey } from './attr.ts';

export function registerDirOps(s: Session, c: PtContext): void {
  s.on(Op.OPENDIR, (req, b) => {
    b.struct(OPEN_IN);
    const path = c.nodePath(req.nodeid);
    const st = c.lstat(path);
    if (!st.isDirectory()) throw new Errno('ENOTDIR');
    const id = c.addHandle({ kind: 'dir', node: c.nodes.get(req.nodeid), names: null });
    return encodeStruct(OPEN_OUT, { fh: id, open_flags: 0, backing_id: 0 });
  });

  // A policy's lister (names merged from several directories) is asynchronous; the plain
  // listing is not, so a READDIR of one directory is served in one turn of the event loop.
  const list = (req: Request, b: BodyReader, plus: boolean): Buffer | Promise<Buffer> => {
    const a = b.struct(READ_IN);
    const h = c.dir(a.fh);
    const dirRel = c.nodes.path(h.node.id);
    if (Number(a.offset) !== 0 && h.names !== null) return window(a, h.names, dirRel, plus);
    if (c.lister) {
      return c.lister(dirRel).then((names) => window(a, (h.names = ['.', '..', ...names]), dirRel, plus));
    }
    return window(a, (h.names = ['.', '..', ...readdirSync(c.abs(dirRel))]), dirRel, plus);
  };

  const window = (a: { offset: bigint; size: number }, names: string[], dirRel: string, plus: boolean): Buffer => {
    const start = Number(a.offset);

    // Pick the window that fits first, so we stat only what we send.
    const sizeOf = plus ? direntplusSize : direntSize;
    let end = start;
    for (let used = 0; end < names.length; end++) {
      used += sizeOf(Buffer.byteLength(names[end]!));
      if (used > a.size) break;
    }
    const rels = names.slice(start, end).map((n) => (n === '.' ? dirRel : n === '..' ? parentOf(dirRel) : dirRel === '' ? n : `${dirRel}/${n}`));
    const stats = rels.map((r) => {
      try {
        return c.lstat(c.abs(r));
      } catch {
        return null;
      }
    });

    const out = Buffer.alloc(a.size);
    let at = 0;
    for (let i = 0; i < rels.length; i++) {
      const st: BigIntStats | null = stats[i]!;
      if (!st) continue; // removed since the snapshot: leave it out, offsets stay valid
      const name = names[start + i]!;
      const d = { ino: st.ino, off: start + i + 1, type: dtype(st.mode), name };
      if (!plus) {
        const next = encodeDirentInto(out, at, d);
        if (next < 0) break;
        at = next;
        continue;
      }
      // "." and ".." get nodeid 0: the kernel ignores their entry and takes no reference.
      const isDot = name === '.' || name === '..';
      const entry = isDot ? null : { nodeid: 0, entryValid: c.opts.entryTimeout, attrValid: c.opts.attrTimeout, attr: c.attr({ rel: rels[i]! }, st) };
      const next = encodeDirentplusInto(out, at, entry, d);
      if (next < 0) break;
      if (entry) {
        // Reference taken only for entries that made it into the reply.
        const node = c.nodes.remember(statKey(st), rels[i]!);
        out.writeBigUInt64LE(BigInt(node.id), at);
      }
      at = next;
    }
    return out.subarray(0, at);
  };

  s.on(Op.READDIR, (req, b) => list(req, b, false));
  s.on(Op.READDIRPLUS, (req, b) => list(req, b, true));

  s.on(Op.RELEASEDIR, (_req, b) => {
    c.dropHandle(b.struct(RELEASE_IN).fh);
  });

  s.on(Op.FSYNCDIR, (req, b) => {
    const a = b.struct(FSYNC_IN);
    c.dir(a.fh);
    const fd = openSync(c.nodePath(req.nodeid), fsc.O_RDONLY | fsc.O_DIRECTORY);
    try {
      if (a.fsync_flags & FUSE_FSYNC_FDATASYNC) fdatasyncSync(fd);
      else fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  });
}

function parentOf(rel: string): string {
  const i = rel.lastIndexOf('/');
  return i < 0 ? '' : rel.slice(0, i);
}
