// The userspace runtime of placement policies (the twin of bpf/runtime/placement.bpf.h):
// every file lives in exactly one backing directory, the one the policy's place() gives
// for its path, and every directory lives in all of them (backing 0's is the one whose
// attributes count).
//
// Where a name lives is a function of the path, so the passthrough handlers work unchanged
// once paths resolve through place() (PtContext.resolver), listings merge the backings
// (PtContext.lister), and the operations that make or move directories do so in every
// backing. A rename that changes a file's place moves it between backing directories (one
// rename(2) when they share a filesystem, else EXDEV, which mv turns into a copy); renaming
// a directory whose files would change place is EXDEV. The program serves the data path of
// open files from the one backing file the daemon publishes, counting per backing directory.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { BodyReader, MKDIR_IN, Op, RENAME2_IN, RENAME_IN, type Request } from '../../fuse/protocol.ts';
import { Errno, type Handler, type HandlerResult, type Session } from '../../fuse/session.ts';
import * as libc from '../../fuse/libc.ts';
import type { BackingSink } from '../fanout.ts';
import { PlacedDaemon } from './placed.ts';
import type { PlacementHooks, PolicyValues } from '../lang/define.ts';

export interface PlacementOptions {
  /** The policy's name (messages, counters). */
  name: string;
  backings: string[];
  /** Its placement function (functions.ts), called with `context`. */
  hooks: PlacementHooks<PolicyValues>;
  context: PolicyValues;
  sink?: BackingSink;
}

/**
 * Names over several backing directories where every directory lives in all of them and a
 * file where the subclass says (homeOf): the directory operations, the resolution of paths
 * and the merged listings. The subclass renames files and decides whether a directory
 * rename would move files.
 */
export abstract class DirsEverywhereDaemon extends PlacedDaemon {
  /** Names being made or moved as directories: they resolve to backing 0. */
  protected readonly asDir = new Set<string>();

  /** The backing directory whose copy of the non-directory `rel` counts (its attributes). */
  protected abstract homeOf(rel: string): number;
  /** Whether a listing of backing `i` shows the non-directory `child` (each name once). */
  protected abstract listedIn(child: string, i: number): boolean;
  /** Whether renaming directory `from` to `to` would move files between backings (EXDEV). */
  abstract movesFiles(from: string, to: string): Promise<boolean>;
  /** RENAME of a non-directory (`orig` renames the copy `resolve` finds). */
  protected abstract renameFile(orig: Handler, req: Request, from: string, to: string, flags: number): Promise<HandlerResult>;

  protected isDir(abs: string): boolean {
    return fs.lstatSync(abs, { throwIfNoEntry: false })?.isDirectory() ?? false;
  }

  protected resolve = (rel: string): string => {
    const home = this.backingPath(0, rel);
    if (rel === '' || this.asDir.has(rel) || this.isDir(home)) return home;
    return this.backingPath(this.homeOf(rel), rel);
  };

  /** Backing 0's directories, and each backing's files its subclass lists there. */
  private list = async (rel: string): Promise<string[]> => {
    const names: string[] = [];
    for (let i = 0; i < this.opts.backings.length; i++) {
      const ents = await fsp.readdir(this.backingPath(i, rel), { withFileTypes: true }).catch((e) => {
        if (i > 0 && e.code === 'ENOENT') return [];
        throw e;
      });
      for (const d of ents) {
        const child = rel === '' ? d.name : `${rel}/${d.name}`;
        if (d.isDirectory() ? i === 0 : this.listedIn(child, i)) names.push(d.name);
      }
    }
    return names;
  };

  protected placeOf(rel: string): number {
    return this.homeOf(rel);
  }

  protected installMore(s: Session): void {
    this.c.resolver = this.resolve;
    this.c.lister = this.list;
    const c = this.c;
    const body = (req: Request) => new BodyReader(req.body, this.policy);
    const wrap = (op: number, f: (orig: Handler, req: Request) => Promise<HandlerResult>) => {
      const orig = s.handler(op)!;
      s.on(op, (req) => f(orig, req));
    };
    const asDir = async <T>(rels: string[], f: () => Promise<T>): Promise<T> => {
      for (const r of rels) this.asDir.add(r);
      try {
        return await f();
      } finally {
        for (const r of rels) this.asDir.delete(r);
      }
    };

    // A directory is made in backing 0 (the reply's attributes), then in the others.
    wrap(Op.MKDIR, async (orig, req) => {
      const b = body(req);
      const { mode } = b.struct(MKDIR_IN);
      const { rel } = c.child(req.nodeid, b.cstring());
      const r = await asDir([rel], async () => orig(req, body(req)));
      for (let i = 1; i < this.opts.backings.length; i++) {
        await fsp.mkdir(this.backingPath(i, rel), { recursive: true, mode: mode & 0o7777 });
      }
      return r;
    });

    // Only an empty directory goes: the others first (their files are the directory's too).
    wrap(Op.RMDIR, async (orig, req) => {
      const { rel } = c.child(req.nodeid, body(req).cstring());
      const removed: number[] = [];
      try {
        for (let i = 1; i < this.opts.backings.length; i++) {
          try {
            await fsp.rmdir(this.backingPath(i, rel));
            removed.push(i);
          } catch (e) {
            if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
          }
        }
        return await orig(req, body(req));
      } catch (e) {
        for (const i of removed) await fsp.mkdir(this.backingPath(i, rel)).catch(() => undefined);
        throw e;
      }
    });

    const rename = (two: boolean) => async (orig: Handler, req: Request) => {
      const b = body(req);
      const a = two ? b.struct(RENAME2_IN) : { ...b.struct(RENAME_IN), flags: 0 };
      const from = c.child(req.nodeid, b.cstring()).rel;
      const to = c.child(Number(a.newdir), b.cstring()).rel;
      if (!this.isDir(this.backingPath(0, from))) return this.renameFile(orig, req, from, to, a.flags);
      if (a.flags & libc.RENAME_EXCHANGE) throw new Errno('EXDEV', `${this.policy}: exchanging directories is not supported`);
      if (await this.movesFiles(from, to)) throw new Errno('EXDEV', `${this.policy}: renaming ${from} to ${to} would move files between backing directories`);
      // Replacing a directory: empty in the merged view, not just in backing 0.
      for (let i = 1; i < this.opts.backings.length && this.isDir(this.backingPath(0, to)); i++) {
        if ((await fsp.readdir(this.backingPath(i, to)).catch(() => [])).length) throw new Errno('ENOTEMPTY');
      }
      const r = await asDir([from, to], async () => orig(req, body(req)));
      for (let i = 1; i < this.opts.backings.length; i++) {
        const src = this.backingPath(i, from);
        if (fs.existsSync(src)) await fsp.rename(src, this.backingPath(i, to));
        else await fsp.mkdir(this.backingPath(i, to), { recursive: true });
      }
      return r;
    };
    wrap(Op.RENAME, rename(false));
    wrap(Op.RENAME2, rename(true));
    this.installFiles(s, wrap, body);
  }

  /** More handlers of the subclass, wrapped after the directory ones. */
  protected installFiles(_s: Session, _wrap: (op: number, f: (orig: Handler, req: Request) => Promise<HandlerResult>) => void, _body: (req: Request) => BodyReader): void {}
}

export class PlacementDaemon extends DirsEverywhereDaemon {
  constructor(private readonly r: PlacementOptions) {
    super({ backings: r.backings, sink: r.sink }, r.name);
  }

  protected homeOf(rel: string): number {
    return this.route(rel);
  }

  protected listedIn(child: string, i: number): boolean {
    return this.route(child) === i;
  }

  /** rename(2) from the file's backing to the new name's: a change of place moves it. */
  protected async renameFile(orig: Handler, req: Request, from: string, to: string, flags: number): Promise<HandlerResult> {
    if ((flags & libc.RENAME_EXCHANGE) && (this.isDir(this.backingPath(0, to)) || this.route(from) !== this.route(to))) {
      throw new Errno('EXDEV', `${this.r.name}: exchanging names that live in different backing directories`);
    }
    return orig(req, new BodyReader(req.body, this.r.name));
  }

  /** The backing directory a non-directory at `rel` lives in: the policy's place(). */
  route(rel: string): number {
    const i = this.r.hooks.place(rel, this.r.context);
    if (!(Number.isInteger(i) && i >= 0 && i < this.opts.backings.length)) {
      throw new Errno('EIO', `${this.r.name}: place(${JSON.stringify(rel)}) gave backing ${i}, not one of 0..${this.opts.backings.length - 1}`);
    }
    return i;
  }

  /**
   * Whether renaming directory `from` to `to` would change where a file under it lives:
   * place() asked for every file the directory holds, in every backing directory.
   */
  async movesFiles(from: string, to: string): Promise<boolean> {
    for (let i = 0; i < this.opts.backings.length; i++) {
      const stack = [''];
      while (stack.length) {
        const sub = stack.pop()!;
        const dir = sub === '' ? from : `${from}/${sub}`;
        const ents = await fsp.readdir(this.backingPath(i, dir), { withFileTypes: true }).catch(() => []);
        for (const d of ents) {
          const rel = sub === '' ? d.name : `${sub}/${d.name}`;
          if (d.isDirectory()) stack.push(rel);
          else if (this.route(`${from}/${rel}`) !== this.route(`${to}/${rel}`)) return true;
        }
      }
    }
    return false;
  }
}
