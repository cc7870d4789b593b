// The nodeid table. A nodeid stands for one backing inode (dev:ino), so hard links share
// a nodeid like they share an inode. Each node remembers every backing path it is known
// by: after `ln a b; rm a` the kernel may still hold the nodeid and we must reach it as b.
import { FUSE_ROOT_ID } from './protocol.ts';
import { Errno } from './session.ts';

export interface Node {
  readonly id: number;
  key: string;
  /** Paths relative to the backing root; '' is the root. */
  paths: string[];
  /** Kernel references: +1 per entry reply, minus FORGET counts. */
  nlookup: number;
  /** Passthrough backing id shared by all open handles of the node. */
  backing?: { id: number; refs: number };
  /** Open file handles; a forgotten node with open files stays until they close. */
  openCount: number;
}

export class NodeTable {
  private byId = new Map<number, Node>();
  private byKey = new Map<string, Node>();
  private nextId = FUSE_ROOT_ID + 1;

  constructor(rootKey: string) {
    const root: Node = { id: FUSE_ROOT_ID, key: rootKey, paths: [''], nlookup: 1, openCount: 0 };
    this.byId.set(root.id, root);
    this.byKey.set(rootKey, root);
  }

  get size(): number {
    return this.byId.size;
  }

  get(id: number): Node {
    const n = this.byId.get(id);
    if (!n) throw new Errno('ESTALE', `unknown nodeid ${id}`);
    return n;
  }

  /** The path to use for path-based syscalls on this node. */
  path(id: number): string {
    const n = this.get(id);
    const p = n.paths[0];
    if (p === undefined) throw new Errno('ENOENT', `nodeid ${id} has no remaining name`);
    return p;
  }

  /** Records an entry reply: finds or creates the node for key and bumps nlookup. */
  remember(key: string, rel: string): Node {
    let n = this.byKey.get(key);
    if (!n) {
      n = { id: this.nextId++, key, paths: [], nlookup: 0, openCount: 0 };
      this.byId.set(n.id, n);
      this.byKey.set(key, n);
    }
    if (!n.paths.includes(rel)) n.paths.unshift(rel);
    n.nlookup++;
    return n;
  }

  /** Peeks without taking a reference (for READDIRPLUS "already known" checks etc.). */
  byKeyPeek(key: string): Node | undefined {
    return this.byKey.get(key);
  }

  forget(id: number, count: number): void {
    const n = this.byId.get(id);
    if (!n || id === FUSE_ROOT_ID) return;
    n.nlookup -= count;
    this.maybeDrop(n);
  }

  maybeDrop(n: Node): void {
    if (n.nlookup > 0 || n.openCount > 0 || n.id === FUSE_ROOT_ID) return;
    this.byId.delete(n.id);
    if (this.byKey.get(n.key) === n) this.byKey.delete(n.key);
  }

  /** A name went away (unlink, rmdir, or the target of a rename). */
  removePath(rel: string): void {
    for (const n of this.byId.values()) {
      const i = n.paths.indexOf(rel);
      if (i < 0) continue;
      n.paths.splice(i, 1);
      // Once a node has no names its inode number may be reused by a new file, which
      // must then get a fresh nodeid.
      if (n.paths.length === 0 && this.byKey.get(n.key) === n) this.byKey.delete(n.key);
    }
  }

  /** Rewrites from -> to for the node itself and, for directories, everything below it. */
  renamePath(from: string, to: string): void {
    const prefix = from + '/';
    for (const n of this.byId.values()) {
      n.paths = n.paths.map((p) => (p === from ? to : p.startsWith(prefix) ? to + p.slice(from.length) : p));
    }
  }

  /** RENAME_EXCHANGE: the two names trade places. */
  exchangePaths(a: string, b: string): void {
    const tmp = '\0exchange';
    this.renamePath(a, tmp);
    this.renamePath(b, a);
    this.renamePath(tmp, b);
  }

  addPath(id: number, rel: string): void {
    const n = this.get(id);
    if (!n.paths.includes(rel)) n.paths.push(rel);
  }
}
