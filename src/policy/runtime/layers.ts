// The userspace runtime of layered policies (union): backing 0 is the writable upper directory, backings
// 1..n-1 are read-only lowers, highest first. A name is the topmost layer's; a directory is
// the merge of the layers that have it. Nothing in a lower directory is ever modified:
//
// - copy-up: opening a lower file for writing, changing its attributes or xattrs, linking or
//   renaming it first copies it (and the directories above it) to the upper directory;
// - whiteouts: removing a name a lower layer has leaves an empty `.wh.NAME` in the upper
//   directory, which hides it (names starting with `.wh.` are reserved);
// - opaque directories: a directory made where a lower one was removed gets
//   `.wh..wh..opq`, so the lower contents stay hidden;
// - renaming a directory that a lower layer has is EXDEV (mv then copies), as overlayfs
//   does without redirect_dir.
//
// Paths resolve through the layers (PtContext.resolver), so the passthrough handlers serve
// lookups, attributes and opens unchanged. The program (bpf/runtime/layers.bpf.h) serves the
// data path of open files from the one backing file the daemon publishes, at its layer's
// index. The policy's hidden() says which names are never listed nor made (whiteouts are).
import fs from 'node:fs';
import fsp, { type FileHandle } from 'node:fs/promises';
import { constants as fsc } from 'node:fs';
import { basename, dirname } from 'node:path';
import { BodyReader, CREATE_IN, LINK_IN, MKDIR_IN, MKNOD_IN, OPEN_IN, Op, RENAME2_IN, RENAME_IN, type Request } from '../../fuse/protocol.ts';
import { Errno, type Handler, type HandlerResult, type Session } from '../../fuse/session.ts';
import * as libc from '../../fuse/libc.ts';
import type { BackingSink, OpenFile } from '../fanout.ts';
import { PlacedDaemon } from './placed.ts';
import type { LayerHooks, PolicyValues } from '../lang/define.ts';

export const UPPER = 0;
export const WHITEOUT = '.wh.';
export const OPAQUE = '.wh..wh..opq';

export interface UnionOptions {
  /** The policy's name (messages, counters). */
  name: string;
  /** [upper, lower1, ...]; upper must be the mount's backing directory. */
  backings: string[];
  /** Its layer functions (functions.ts), called with `context`. */
  hooks: LayerHooks<PolicyValues>;
  context: PolicyValues;
  sink?: BackingSink;
}

const parentOf = (rel: string) => (rel.includes('/') ? dirname(rel) : '');
const join2 = (dir: string, name: string) => (dir === '' ? name : `${dir}/${name}`);
const WRITE_FLAGS = fsc.O_WRONLY | fsc.O_RDWR | fsc.O_TRUNC;

export class UnionDaemon extends PlacedDaemon {
  /** Files and directories copied up, whiteouts made. */
  copyUps = 0;
  whiteouts = 0;

  constructor(private readonly u: UnionOptions) {
    super({ backings: u.backings, sink: u.sink }, u.name);
  }

  /** Names never listed nor made: whiteouts, and what the policy's hidden() says. */
  private hidden(name: string): boolean {
    return name.startsWith(WHITEOUT) || !!this.u.hooks.hidden(name, this.u.context);
  }

  private lstat(layer: number, rel: string): fs.Stats | undefined {
    return fs.lstatSync(this.backingPath(layer, rel), { throwIfNoEntry: false });
  }

  private hasWhiteout(layer: number, rel: string): boolean {
    return this.lstat(layer, join2(parentOf(rel), WHITEOUT + basename(rel))) !== undefined;
  }

  private isOpaque(layer: number, dirRel: string): boolean {
    return this.lstat(layer, join2(dirRel, OPAQUE)) !== undefined;
  }

  /**
   * The layers where `rel` is visible, topmost first: one for a non-directory, every layer
   * down to an opaque one for a directory. Empty: the name does not exist.
   */
  layers(rel: string): number[] {
    const all = this.opts.backings.map((_, i) => i);
    if (rel === '') {
      const k = all.findIndex((i) => this.isOpaque(i, ''));
      return k < 0 ? all : all.slice(0, k + 1);
    }
    const out: number[] = [];
    for (const layer of this.layers(parentOf(rel))) {
      const st = this.lstat(layer, rel);
      if (st) {
        if (!st.isDirectory()) {
          if (!out.length) out.push(layer);
          break; // a file hides whatever is below it; a directory hides files below it
        }
        out.push(layer);
        if (this.isOpaque(layer, rel)) break;
      }
      if (this.hasWhiteout(layer, rel)) break;
    }
    return out;
  }

  /** Whether a layer below the upper has `rel` (so removing it needs a whiteout). */
  private inLower(rel: string): boolean {
    return this.layers(rel).some((l) => l !== UPPER) || this.lowerBelowUpper(rel);
  }

  /** A lower name hidden only by the upper's entry (not by a whiteout). */
  private lowerBelowUpper(rel: string): boolean {
    const parents = this.layers(parentOf(rel));
    for (const layer of parents) {
      if (layer === UPPER) {
        if (this.hasWhiteout(UPPER, rel)) return false;
        if (this.lstat(UPPER, rel)?.isDirectory() && this.isOpaque(UPPER, rel)) return false;
        continue;
      }
      if (this.lstat(layer, rel)) return true;
      if (this.hasWhiteout(layer, rel)) return false;
    }
    return false;
  }

  private resolve = (rel: string): string => {
    const l = this.layers(rel);
    return this.backingPath(l.length ? l[0]! : UPPER, rel);
  };

  /** The merged listing: each name once, whiteouts applied, reserved names left out. */
  private list = async (rel: string): Promise<string[]> => {
    const seen = new Set<string>();
    const hidden = new Set<string>();
    const names: string[] = [];
    for (const layer of this.layers(rel)) {
      const here = await fsp.readdir(this.backingPath(layer, rel));
      const wh = here.filter((n) => n.startsWith(WHITEOUT)).map((n) => n.slice(WHITEOUT.length));
      for (const n of here) {
        if (this.hidden(n) || seen.has(n) || hidden.has(n)) continue;
        seen.add(n);
        names.push(n);
      }
      for (const n of wh) hidden.add(n);
    }
    return names;
  };

  /** The directories above and at `dirRel` exist in the upper layer (modes copied). */
  private ensureUpperDir(dirRel: string): void {
    if (dirRel === '' || this.lstat(UPPER, dirRel)?.isDirectory()) return;
    this.ensureUpperDir(parentOf(dirRel));
    const from = this.layers(dirRel)[0];
    const st = from !== undefined ? this.lstat(from, dirRel) : undefined;
    if (!st?.isDirectory()) throw new Errno('ENOENT', `union: no directory ${dirRel}`);
    fs.mkdirSync(this.backingPath(UPPER, dirRel), { mode: st.mode & 0o7777 });
    fs.chmodSync(this.backingPath(UPPER, dirRel), st.mode & 0o7777); // past the umask
    fs.lchownSync(this.backingPath(UPPER, dirRel), st.uid, st.gid);
    this.copyUps++;
  }

  /** A lower file to the upper layer: contents, mode, owner, times (not hard links).
   *  Returns whether it copied (false: already in the upper layer). */
  private async copyUp(rel: string): Promise<boolean> {
    const l = this.layers(rel);
    if (!l.length) throw new Errno('ENOENT');
    if (l[0] === UPPER) return false;
    const from = this.backingPath(l[0]!, rel);
    const to = this.backingPath(UPPER, rel);
    const st = fs.lstatSync(from);
    this.ensureUpperDir(parentOf(rel));
    if (st.isDirectory()) {
      this.ensureUpperDir(rel);
      return true;
    }
    // Into a temporary name, then renamed: a failed copy leaves no half file in the union.
    const tmp = this.backingPath(UPPER, join2(parentOf(rel), `${WHITEOUT}copyup.${process.pid}.${this.copyUps}`));
    try {
      if (st.isSymbolicLink()) await fsp.symlink(await fsp.readlink(from), tmp);
      else if (st.isFile()) {
        await fsp.copyFile(from, tmp);
        await fsp.chmod(tmp, st.mode & 0o7777);
      } else throw new Errno('EPERM', `union: cannot copy up ${rel} (not a file, directory or symlink)`);
      await fsp.lchown(tmp, st.uid, st.gid);
      if (!st.isSymbolicLink()) await fsp.utimes(tmp, st.atime, st.mtime);
      await fsp.rename(tmp, to);
    } catch (e) {
      await fsp.rm(tmp, { force: true });
      throw e;
    }
    this.copyUps++;
    return true;
  }

  /** Hide `rel` of the lower layers. */
  private whiteout(rel: string): void {
    this.ensureUpperDir(parentOf(rel));
    fs.writeFileSync(this.backingPath(UPPER, join2(parentOf(rel), WHITEOUT + basename(rel))), '');
    this.whiteouts++;
  }

  /** A name is about to be made in the upper layer: its parents exist there. Returns
   *  whether a whiteout hides lower entries of that name; it stays until the new entry is
   *  made (then dropWhiteout()), so the name never resolves to a lower layer in between. */
  private prepareNew(rel: string): boolean {
    if (this.hidden(basename(rel))) throw new Errno('EPERM', `${this.u.name}: ${basename(rel)} is a reserved name${basename(rel).startsWith(WHITEOUT) ? ` (names starting with ${WHITEOUT} are whiteouts)` : ''}`);
    this.ensureUpperDir(parentOf(rel));
    return this.hasWhiteout(UPPER, rel);
  }

  private dropWhiteout(rel: string): void {
    fs.rmSync(this.backingPath(UPPER, join2(parentOf(rel), WHITEOUT + basename(rel))), { force: true });
  }

  protected placeOf(rel: string): number {
    return this.layers(rel)[0] ?? UPPER;
  }

  protected writable(layer: number): boolean {
    return layer === UPPER;
  }

  protected async write(open: OpenFile, fds: FileHandle[], offset: number, data: Buffer): Promise<number> {
    if ((await this.placeOfOpen(open)) !== UPPER) throw new Errno('EROFS', 'union: a lower layer is read-only');
    return super.write(open, fds, offset, data);
  }

  protected installMore(s: Session): void {
    const c = this.c;
    c.resolver = this.resolve;
    c.lister = this.list;
    const body = (req: Request) => new BodyReader(req.body, 'union');
    const wrap = (op: number, f: (orig: Handler, req: Request) => Promise<HandlerResult>) => {
      const orig = s.handler(op)!;
      s.on(op, (req) => f(orig, req));
    };
    const reserved = (name: string) => name.startsWith(WHITEOUT);

    wrap(Op.LOOKUP, async (orig, req) => {
      if (reserved(body(req).cstring())) throw new Errno('ENOENT');
      return orig(req, body(req));
    });

    // Copy-up before the file is opened for writing; a file already open from a lower
    // layer is switched to the copy.
    wrap(Op.OPEN, async (orig, req) => {
      const { flags } = body(req).struct(OPEN_IN);
      if (flags & WRITE_FLAGS) {
        const rel = c.nodes.path(req.nodeid);
        if (await this.copyUp(rel)) await this.refresh(req.nodeid, rel);
      }
      return orig(req, body(req));
    });

    // New names: in the upper layer, over any whiteout.
    const creating = (skip: (b: BodyReader) => unknown) => async (orig: Handler, req: Request) => {
      const b = body(req);
      skip(b);
      const { rel } = c.child(req.nodeid, b.cstring());
      if (this.layers(rel).length) throw new Errno('EEXIST');
      this.prepareNew(rel);
      const r = await orig(req, body(req));
      this.dropWhiteout(rel);
      return r;
    };
    wrap(Op.CREATE, creating((b) => b.struct(CREATE_IN)));
    wrap(Op.MKNOD, creating((b) => b.struct(MKNOD_IN)));
    wrap(Op.SYMLINK, creating(() => undefined));
    wrap(Op.LINK, async (orig, req) => {
      const b = body(req);
      const { oldnodeid } = b.struct(LINK_IN);
      const { rel } = c.child(req.nodeid, b.cstring());
      if (this.layers(rel).length) throw new Errno('EEXIST');
      await this.copyUp(c.nodes.path(Number(oldnodeid)));
      this.prepareNew(rel);
      const r = await orig(req, body(req));
      this.dropWhiteout(rel);
      return r;
    });
    wrap(Op.MKDIR, async (orig, req) => {
      const b = body(req);
      b.struct(MKDIR_IN);
      const { rel } = c.child(req.nodeid, b.cstring());
      if (this.layers(rel).length) throw new Errno('EEXIST');
      // Over a whiteout the lower directories of that name stay hidden: opaque.
      const overWhiteout = this.prepareNew(rel);
      const r = await orig(req, body(req));
      if (overWhiteout) {
        fs.writeFileSync(this.backingPath(UPPER, join2(rel, OPAQUE)), '');
        this.dropWhiteout(rel);
      }
      return r;
    });

    wrap(Op.UNLINK, async (_orig, req) => {
      const { rel } = c.child(req.nodeid, body(req).cstring());
      const l = this.layers(rel);
      if (!l.length || reserved(basename(rel))) throw new Errno('ENOENT');
      if (this.lstat(l[0]!, rel)!.isDirectory()) throw new Errno('EISDIR');
      const lower = this.inLower(rel) || l[0] !== UPPER;
      if (l[0] === UPPER) await fsp.unlink(this.backingPath(UPPER, rel));
      if (lower) this.whiteout(rel);
      c.nodes.removePath(rel);
    });

    wrap(Op.RMDIR, async (_orig, req) => {
      const { rel } = c.child(req.nodeid, body(req).cstring());
      const l = this.layers(rel);
      if (!l.length || reserved(basename(rel))) throw new Errno('ENOENT');
      if (!this.lstat(l[0]!, rel)!.isDirectory()) throw new Errno('ENOTDIR');
      if ((await this.list(rel)).length) throw new Errno('ENOTEMPTY');
      const lower = l.some((x) => x !== UPPER) || this.lowerBelowUpper(rel);
      if (l[0] === UPPER) await fsp.rm(this.backingPath(UPPER, rel), { recursive: true }); // only whiteouts left
      if (lower) this.whiteout(rel);
      c.nodes.removePath(rel);
    });

    const rename = (two: boolean) => async (_orig: Handler, req: Request) => {
      const b = body(req);
      const a = two ? b.struct(RENAME2_IN) : { ...b.struct(RENAME_IN), flags: 0 };
      const from = c.child(req.nodeid, b.cstring()).rel;
      const to = c.child(Number(a.newdir), b.cstring()).rel;
      if (reserved(basename(from)) || reserved(basename(to))) throw new Errno('EPERM', `union: names starting with ${WHITEOUT} are reserved`);
      if (a.flags & ~libc.RENAME_NOREPLACE) throw new Errno('EINVAL', 'union: only RENAME_NOREPLACE is supported');
      const lf = this.layers(from);
      if (!lf.length) throw new Errno('ENOENT');
      if (from === to) return;
      const lt = this.layers(to);
      if (lt.length && a.flags & libc.RENAME_NOREPLACE) throw new Errno('EEXIST');
      const fromDir = this.lstat(lf[0]!, from)!.isDirectory();
      if (lt.length) {
        const toDir = this.lstat(lt[0]!, to)!.isDirectory();
        if (fromDir && !toDir) throw new Errno('ENOTDIR');
        if (!fromDir && toDir) throw new Errno('EISDIR');
        if (toDir && (await this.list(to)).length) throw new Errno('ENOTEMPTY');
      }
      if (fromDir && (lf.some((l) => l !== UPPER) || this.lowerBelowUpper(from))) {
        throw new Errno('EXDEV', `union: ${from} is (also) in a lower layer; mv copies it instead`);
      }
      const fromLower = this.inLower(from) || lf[0] !== UPPER;
      const toLower = this.inLower(to);
      await this.copyUp(from);
      const overWhiteout = this.prepareNew(to);
      if (lt.length && lt[0] === UPPER && fromDir) await fsp.rm(this.backingPath(UPPER, to), { recursive: true }); // an empty merged directory
      await fsp.rename(this.backingPath(UPPER, from), this.backingPath(UPPER, to));
      if (fromDir && (toLower || overWhiteout)) fs.writeFileSync(this.backingPath(UPPER, join2(to, OPAQUE)), '');
      this.dropWhiteout(to);
      if (fromLower) this.whiteout(from);
      c.nodes.removePath(to);
      c.nodes.renamePath(from, to);
    };
    wrap(Op.RENAME, rename(false));
    wrap(Op.RENAME2, rename(true));

    // Anything that changes a lower entry changes its upper copy instead.
    const copyUpFirst = async (orig: Handler, req: Request) => {
      const rel = c.nodes.path(req.nodeid);
      if (await this.copyUp(rel)) await this.refresh(req.nodeid, rel);
      return orig(req, body(req));
    };
    wrap(Op.SETATTR, copyUpFirst);
    wrap(Op.SETXATTR, copyUpFirst);
    wrap(Op.REMOVEXATTR, copyUpFirst);
  }
}
