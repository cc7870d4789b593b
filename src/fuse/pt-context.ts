// State shared by the passthrough filesystem's op groups: backing root, nodeid table,
// open handles, and the helpers every op needs. Its calls on the backing filesystem are
// synchronous: a request is served in one turn of the event loop, with no hop to libuv's
// threadpool and back (docs/fuse-server.md: the request path).
import { chmodSync, closeSync, fstatSync, lchownSync, lstatSync, type BigIntStats } from 'node:fs';
import { constants as osConstants } from 'node:os';
import type { FuseDevice } from './dev.ts';
import { NodeTable, type Node } from './nodes.ts';
import { encodeEntryOut, encodeAttrOut, encodeAttrOutWith, encodeEntryOutWith, type AttrIn, type Request } from './protocol.ts';
import { statxFd, statxOrENOENT, statxPath, sxAttrInto, sxKey } from './statx.ts';
import { Errno, type Session } from './session.ts';
import { statKey, toAttr } from './attr.ts';
import * as libc from './libc.ts';

export interface FileHandleEntry {
  kind: 'file';
  /** The backing file, opened by the daemon. */
  fd: number;
  node: Node;
  passthrough: boolean;
  /** READ and WRITE of this handle are served by the reader threads (dev.ts: FAST_FH). */
  fast: boolean;
}

export interface DirHandleEntry {
  kind: 'dir';
  node: Node;
  /** Snapshot taken at offset 0, so offsets stay stable while the directory changes. */
  names: string[] | null;
}

export interface PassthroughOptions {
  passthrough: boolean;
  /** Seconds the kernel may cache names and attributes. */
  entryTimeout: number;
  attrTimeout: number;
}

/**
 * Attributes as a policy sees them: a stripe's file is larger than its primary piece.
 * Given the node (when known) or its path relative to the root, and the primary's stat.
 */
export type AttrHook = (at: { nodeid?: number; rel?: string }, st: BigIntStats, attr: AttrIn) => AttrIn;

/**
 * Where a path lives, for policies whose names are spread over several directories (route,
 * union): relative path -> absolute path of the entry (or where it is to be created).
 */
export type Resolver = (rel: string) => string;

export class PtContext {
  readonly nodes: NodeTable;
  attrHook: AttrHook | null = null;
  resolver: Resolver | null = null;
  /** A directory's names when they come from several directories (merged, hidden ones left out). */
  lister: ((rel: string) => Promise<string[]>) | null = null;
  readonly handles = new Map<number, FileHandleEntry | DirHandleEntry>();
  private nextFh = 1;
  private readonly umask: number;
  readonly isRoot = (process.getuid?.() ?? 1) === 0;

  constructor(
    readonly root: string,
    rootStat: BigIntStats,
    readonly session: Session,
    readonly dev: FuseDevice,
    readonly opts: PassthroughOptions,
  ) {
    this.nodes = new NodeTable(statKey(rootStat));
    this.umask = process.umask();
  }

  abs(rel: string): string {
    if (this.resolver) return this.resolver(rel);
    return rel === '' ? this.root : `${this.root}/${rel}`;
  }

  /** Path of a node, absolute. */
  nodePath(id: number): string {
    return this.abs(this.nodes.path(id));
  }

  child(parentId: number, name: string): { rel: string; abs: string } {
    if (name === '' || name === '.' || name === '..' || name.includes('/')) throw new Errno('EINVAL', `bad name ${JSON.stringify(name)}`);
    const p = this.nodes.path(parentId);
    const rel = p === '' ? name : `${p}/${name}`;
    return { rel, abs: this.abs(rel) };
  }

  lstat(abs: string): BigIntStats {
    // A missing name is the common failure (every negative LOOKUP): answered without
    // node:fs building an exception with a stack trace.
    const st = lstatSync(abs, { bigint: true, throwIfNoEntry: false });
    if (!st) throw new Errno('ENOENT');
    return st;
  }

  /** Builds an entry reply and takes the kernel reference it implies. */
  entryFor(rel: string, st: BigIntStats): Buffer {
    return this.entryNode(rel, st).entry;
  }

  entryNode(rel: string, st: BigIntStats): { entry: Buffer; node: Node } {
    const node = this.nodes.remember(statKey(st), rel);
    return { entry: encodeEntryOut({ nodeid: node.id, entryValid: this.opts.entryTimeout, attrValid: this.opts.attrTimeout, attr: this.attr({ nodeid: node.id, rel }, st) }), node };
  }

  /**
   * LOOKUP's reply for the entry at `abs` (relative path `rel`). Without an attribute hook
   * (no policy reshapes attributes) statx is encoded straight into the reply (statx.ts);
   * with one, through node:fs stats and the hook.
   */
  lookupEntry(rel: string, abs: string): Buffer | number {
    if (!this.attrHook) {
      // A miss is answered as -ENOENT rather than thrown (session.ts: HandlerResult).
      const sx = statxPath(abs);
      if (!sx) return -osConstants.errno.ENOENT;
      const node = this.nodes.remember(sxKey(sx), rel);
      return encodeEntryOutWith(node.id, this.opts.entryTimeout, this.opts.attrTimeout, sxAttrInto);
    }
    return this.entryAt(rel, abs).entry;
  }

  /** The same for a name just made (CREATE, MKDIR, SYMLINK, MKNOD, LINK): by `fd` when the
   *  file is open, else by path; with the node, whose reference the entry takes. */
  entryAt(rel: string, abs: string, fd?: number): { entry: Buffer; node: Node } {
    if (this.attrHook) return this.entryNode(rel, fd !== undefined ? fstatSync(fd, { bigint: true }) : this.lstat(abs));
    const sx = fd !== undefined ? statxFd(fd) : statxOrENOENT(abs);
    const node = this.nodes.remember(sxKey(sx), rel);
    return { entry: encodeEntryOutWith(node.id, this.opts.entryTimeout, this.opts.attrTimeout, sxAttrInto), node };
  }

  /** GETATTR's reply from an open fd, or from the node's path when `fd` is undefined (as lookupEntry). */
  getattrReply(nodeid: number, fd: number | undefined): Buffer {
    return fd !== undefined ? this.attrReplyFd(nodeid, fd) : this.attrReplyAt(nodeid, this.nodePath(nodeid));
  }

  attrReplyAt(nodeid: number, abs: string): Buffer {
    if (this.attrHook) return this.attrOut(nodeid, this.lstat(abs));
    statxOrENOENT(abs);
    return encodeAttrOutWith(this.opts.attrTimeout, sxAttrInto);
  }

  attrReplyFd(nodeid: number, fd: number): Buffer {
    if (this.attrHook) return this.attrOut(nodeid, fstatSync(fd, { bigint: true }));
    statxFd(fd);
    return encodeAttrOutWith(this.opts.attrTimeout, sxAttrInto);
  }

  attrOut(nodeid: number, st: BigIntStats): Buffer {
    return encodeAttrOut(this.opts.attrTimeout, this.attr({ nodeid }, st));
  }

  attr(at: { nodeid?: number; rel?: string }, st: BigIntStats): AttrIn {
    const a = toAttr(st);
    return this.attrHook ? this.attrHook(at, st, a) : a;
  }

  /** `id`: the handle's fh if the caller chose it (a fast file's, dev.ts: fastFh). */
  addHandle(h: FileHandleEntry | DirHandleEntry, id = this.nextFh++): number {
    this.handles.set(id, h);
    h.node.openCount++;
    return id;
  }

  file(fh: bigint | number): FileHandleEntry {
    const h = this.handles.get(Number(fh));
    if (!h || h.kind !== 'file') throw new Errno('EBADF', `no open file handle ${fh}`);
    return h;
  }

  anyOpenFile(nodeid: number): FileHandleEntry | undefined {
    for (const h of this.handles.values()) if (h.kind === 'file' && h.node.id === nodeid) return h;
    return undefined;
  }

  dir(fh: bigint): DirHandleEntry {
    const h = this.handles.get(Number(fh));
    if (!h || h.kind !== 'dir') throw new Errno('EBADF', `no open directory handle ${fh}`);
    return h;
  }

  dropHandle(fh: bigint | number): FileHandleEntry | DirHandleEntry | undefined {
    const h = this.handles.get(Number(fh));
    if (!h) return undefined;
    this.handles.delete(Number(fh));
    h.node.openCount--;
    this.nodes.maybeDrop(h.node);
    return h;
  }

  /**
   * New files are created with the server's umask still applied; the kernel has already
   * applied the caller's (no FUSE_DONT_MASK), so restore the exact mode it asked for and,
   * as root, the caller's ownership.
   */
  fixNew(abs: string, mode: number | null, req: Request, isSymlink = false): void {
    if (mode !== null && !isSymlink && (mode & 0o7777 & this.umask) !== 0) chmodSync(abs, mode & 0o7777);
    if (this.isRoot && (req.uid !== 0 || req.gid !== 0)) {
      lchownSync(abs, req.uid, req.gid);
    }
  }

  /** Passthrough: one backing id per inode, registered on first open, dropped on last close. */
  backingFor(node: Node, fd: number): number {
    if (node.backing) {
      node.backing.refs++;
      return node.backing.id;
    }
    const id = this.dev.backingOpen(fd);
    node.backing = { id, refs: 1 };
    return id;
  }

  releaseBacking(node: Node): void {
    const b = node.backing;
    if (!b) return;
    if (--b.refs > 0) return;
    node.backing = undefined;
    try {
      this.dev.backingClose(b.id);
    } catch (e) {
      if ((e as libc.SysError).code !== 'ENODEV') throw e; // connection already gone
    }
  }

  closeAll(): void {
    const all = [...this.handles.values()];
    this.handles.clear();
    for (const h of all) {
      if (h.kind !== 'file') continue;
      try {
        closeSync(h.fd);
      } catch {
        /* closing everything at the end: nothing to report to */
      }
    }
  }
}
