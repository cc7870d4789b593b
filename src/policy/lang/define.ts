// The policy language, the part a user writes against: definePolicy(), the parameter kinds
// and the decision hooks. A policy module is one .ts file whose definePolicy() call holds
// typed parameters and small pure functions; the compiler (../compiler/) turns those
// functions into BPF C linked with the kernel-side runtime (bpf/runtime/), and the
// userspace runtime (../runtime/) calls the very same functions in the daemon, which is
// the policy's reference for the differential tests. docs/policies.md is the user's guide.
import { fileURLToPath } from 'node:url';

/** Where logical bytes live: `length` bytes from byte `offset` of backing `backing`. */
export interface Segment {
  backing: number;
  offset: number;
  length: number;
}

/** A size in bytes: a number, or a string with a k/m/g suffix ("64k"). */
export interface SizeParam {
  kind: 'size';
  doc: string;
  default: number | string;
  min?: number | string;
  max?: number | string;
  /** The value must be a multiple of this (e.g. "4k": whole pages). */
  multipleOf?: number | string;
}

/** A whole number. */
export interface IntParam {
  kind: 'int';
  doc: string;
  default: number;
  min?: number;
  max?: number;
}

/** One of a few names; compared with `===` in the functions, an enum in the C. */
export interface ChoiceParam<C extends string = string> {
  kind: 'choice';
  doc: string;
  choices: readonly C[];
  default: C;
}

/** One rule of a rules parameter: names that `match` selects go to backing `to`. */
export interface NameRule {
  /** An extension (".log": the name ends with it) or a directory prefix ("logs/": the path starts with it). */
  match: string;
  to: number;
}

/**
 * A list of name rules, written `PATTERN=INDEX,...` on the command line (".log=1,logs/=2"),
 * each PATTERN an extension or a directory prefix, each INDEX a backing directory. The
 * functions read it with `for (const r of p.rules)` and the string tests on `r.match`.
 */
export interface RulesParam {
  kind: 'rules';
  doc: string;
  /** The rules when none are given: `PATTERN=INDEX,...`, or 'none'. */
  default: string;
}

/**
 * The operations an access policy sees (the access runtime serves them for open files),
 * each a FUSE opcode in the C.
 */
export const ACCESS_OPS = ['read', 'write', 'getattr', 'fsync', 'flush', 'fallocate', 'lseek', 'getxattr', 'listxattr'] as const;
export type AccessOp = (typeof ACCESS_OPS)[number];

/**
 * A set of operations, written `write,fallocate` (or 'none') on the command line; the
 * functions ask `p.deny.includes(op)`. A bit mask of FUSE opcodes in the C.
 */
export interface OpsParam {
  kind: 'ops';
  doc: string;
  /** The operations it may hold (default: every one of ACCESS_OPS). */
  allowed?: readonly AccessOp[];
  default: string;
}

/**
 * A short string (at most 56 bytes), e.g. a directory prefix; the functions test paths with
 * it (`path.startsWith(p.shared)`).
 */
export interface StringParam {
  kind: 'string';
  doc: string;
  default: string;
}

export type ParamDecl = SizeParam | IntParam | ChoiceParam | RulesParam | OpsParam | StringParam;

/** The value a declared parameter has inside the policy's functions. */
export type ParamValue<D> = D extends ChoiceParam<infer C> ? C : D extends RulesParam ? readonly NameRule[] : D extends OpsParam ? readonly AccessOp[] : D extends StringParam ? string : number;

/** Parameter values as the runtimes hold them (every kind), with `backings`. */
export type PolicyValues = Record<string, number | string | readonly NameRule[] | readonly AccessOp[]> & { readonly backings: number };

/**
 * What every decision function receives last: the parameters as set for this mount, and
 * `backings`, the number of backing directories it was mounted over.
 */
export type PolicyContext<P extends Record<string, ParamDecl>> = { readonly [K in keyof P]: ParamValue<P[K]> } & {
  readonly backings: number;
};

/**
 * Data layout: where each byte of a FUSE file lives, for files spread over one file in each
 * backing directory (stripe, concatenation). Sizes follow one invariant that the runtimes
 * keep: after every write each backing file is at least backingSize(size, i) bytes, so a
 * short read of a piece is the end of the file.
 */
export interface LayoutHooks<Ctx> {
  /** Where logical byte `off` lives, and how many bytes from there on are contiguous there. */
  locate(off: number, p: Ctx): Segment;
  /** Size of backing `i`'s file when the file is `size` bytes long and fully written. */
  backingSize(size: number, i: number, p: Ctx): number;
  /** The end of the file that a non-empty backing file of `size` bytes at index `i` implies. */
  logicalEnd(size: number, i: number, p: Ctx): number;
}

/**
 * Replicas: every backing directory holds the same files and bytes (mirror, RAID-1). A WRITE
 * goes to every replica (an error from one is returned after the others were written, so
 * the healthy ones stay identical); a READ tries replicas in the order readFrom gives, the
 * next one after an error.
 */
export interface ReplicaHooks<Ctx> {
  /**
   * The replica a READ's `attempt`-th try (0 first) goes to. `turn` counts READs (a cursor
   * shared by the mount's requests, racy on purpose: a lost update only skews a balance).
   */
  readFrom(attempt: number, turn: number, p: Ctx): number;
}

/**
 * Placement: every file lives in one backing directory, chosen by its path (route); every
 * directory lives in all of them. A file whose path changes place (a rename) moves.
 */
export interface PlacementHooks<Ctx> {
  /**
   * The backing directory a file at `path` lives in. `path` is relative to the mount,
   * '/'-separated, without a leading '/' ("logs/app/x.log"); the functions read it with
   * path.startsWith(s), path.endsWith(s) and path === s.
   */
  place(path: string, p: Ctx): number;
}

/**
 * Layers: backing 0 is the writable upper directory, the others read-only lowers, highest
 * first, merged by overlayfs's rules (the runtime's: copy-up on write, whiteouts `.wh.NAME`
 * for removed lower names, opaque directories).
 */
export interface LayerHooks<Ctx> {
  /**
   * Whether a name (one path component) is never listed through the mount nor made there.
   * Whiteouts (`.wh.` names) always are, whatever this says.
   */
  hidden(name: string, p: Ctx): boolean;
}

/**
 * Tiers: backing 0 is the slow tier and holds every file, backing 1 the fast tier, a cache
 * of some of them (the runtime's rules: READ from the fast copy when there is one, WRITE
 * through to both, so the slow tier is always complete).
 */
export interface TierHooks<Ctx> {
  /** Whether a cold file of `size` bytes is copied to the fast tier at its first open. */
  promote(size: number, p: Ctx): boolean;
}

/**
 * Access: one backing file per FUSE file (the mount's one backing directory, served as it
 * is); around each operation on an open file, a check before it and one after it, as
 * fuse-bpf's pre- and post-filters. Both answer 0 to let it be, or an errno
 * (`errno.EPERM`) to fail the operation with.
 */
export interface AccessHooks<Ctx> {
  /** Before `op` runs: 0 lets it run, an errno refuses it (nothing is done). */
  before(op: AccessOp, p: Ctx): number;
  /** After `op` ran with `result` (bytes moved, 0, or -errno): 0 keeps it, an errno replaces it. */
  after(op: AccessOp, result: number, p: Ctx): number;
}

/**
 * Opcodes a raw handler may take (include/uapi/linux/fuse.h), by the name `raw` uses. A raw
 * handler is BPF C of the module's own, for what no family serves: it runs in the program
 * before the family's, and FUSE_BPF_UPCALL from it sends the request on (docs/policies.md).
 */
export const RAW_OPS = {
  lookup: 1, getattr: 3, setattr: 4, readlink: 5, open: 14, read: 15, write: 16, statfs: 17, release: 18, fsync: 20,
  setxattr: 21, getxattr: 22, listxattr: 23, removexattr: 24, flush: 25, opendir: 27, readdir: 28, releasedir: 29,
  fsyncdir: 30, access: 34, create: 35, fallocate: 43, readdirplus: 44, lseek: 46, copy_file_range: 47, statx: 52,
} as const;
export type RawOp = keyof typeof RAW_OPS;

/**
 * Error numbers a policy function returns by name (`return errno.EPERM`). Not ENOSYS: FUSE
 * takes it as "not implemented" and stops sending that operation for the whole mount; the
 * runtimes turn it, and any number outside 1..511, into EIO.
 */
export const errno = Object.freeze({
  EPERM: 1, ENOENT: 2, EIO: 5, EBADF: 9, EAGAIN: 11, ENOMEM: 12, EACCES: 13, EBUSY: 16, EEXIST: 17, EXDEV: 18,
  ENOTDIR: 20, EISDIR: 21, EINVAL: 22, EFBIG: 27, ENOSPC: 28, EROFS: 30, ENAMETOOLONG: 36,
  ENOTEMPTY: 39, ENODATA: 61, EOPNOTSUPP: 95, EDQUOT: 122,
});

/**
 * Spread: each file lives on a set of backing directories chosen when it is made (one:
 * placed; several: replicas of each other), and stays there; directories live in all of
 * them. Unlike placement, where a file lives is found, not computed, so the choice may
 * depend on the order of creations (round-robin).
 */
export interface SpreadHooks<Ctx> {
  /**
   * The backing directories a new file at `path` is made on, as a bit mask (bit i: backing
   * i; at least one). `turn` counts the mount's creations (0 first).
   */
  create(path: string, turn: number, p: Ctx): number;
}

export interface PolicyDefinition<P extends Record<string, ParamDecl> = Record<string, ParamDecl>> {
  /** A C identifier: names the program, its struct_ops and its cache entry. */
  name: string;
  /** One line for `fuse-kfunc policy --help`. */
  summary: string;
  /** How many backing directories it can be mounted over. */
  backings: { min: number; max: number };
  params: P;
  layout?: LayoutHooks<PolicyContext<P>>;
  replicas?: ReplicaHooks<PolicyContext<P>>;
  placement?: PlacementHooks<PolicyContext<P>>;
  layers?: LayerHooks<PolicyContext<P>>;
  tiers?: TierHooks<PolicyContext<P>>;
  access?: AccessHooks<PolicyContext<P>>;
  spread?: SpreadHooks<PolicyContext<P>>;
  /**
   * Raw handlers: per opcode, a BPF C file (a path relative to the module) defining
   * `static int raw_<op>(struct fuse_bpf_ctx *fctx, struct fuse_args *args, struct
   * policy_node *n)` with the kfuncs and the runtime's helpers (bpf/runtime/policy.bpf.h);
   * `n` is the open file's node entry, or NULL. Kernel only: the daemon serves the opcode
   * as it always does when the handler sends it up.
   */
  raw?: Partial<Record<RawOp, string>>;
}

/** A defined policy: the definition and the file it was defined in (the compiler reads it). */
export interface Policy<P extends Record<string, ParamDecl> = Record<string, ParamDecl>> extends PolicyDefinition<P> {
  readonly sourceFile: string;
}

/** The file of definePolicy's caller, from the stack (a file: URL under ESM). */
function callerFile(): string {
  const stack = new Error().stack ?? '';
  for (const line of stack.split('\n').slice(1)) {
    const m = /\(?((?:file:\/\/)?\/[^():]+):\d+:\d+\)?$/.exec(line.trim());
    if (!m) continue;
    const file = m[1]!.startsWith('file:') ? fileURLToPath(m[1]!) : m[1]!;
    if (file !== thisFile) return file;
  }
  throw new Error('definePolicy: cannot tell which file called it (no file in the stack)');
}

const thisFile = fileURLToPath(import.meta.url);

/**
 * Declares a policy. Call it once per module, with an object literal: the compiler finds
 * that call in the module's source and translates its functions, so they must be written
 * in place, in the subset docs/policies.md describes.
 */
export function definePolicy<const P extends Record<string, ParamDecl>>(def: PolicyDefinition<P>, sourceFile?: string): Policy<P> {
  return Object.freeze({ ...def, sourceFile: sourceFile ?? callerFile() });
}

/** Parameter kinds, for `params: { chunk: param.size({...}) }`. */
export const param = {
  size: (o: Omit<SizeParam, 'kind'>): SizeParam => ({ kind: 'size', ...o }),
  int: (o: Omit<IntParam, 'kind'>): IntParam => ({ kind: 'int', ...o }),
  choice: <const C extends string>(o: Omit<ChoiceParam<C>, 'kind'>): ChoiceParam<C> => ({ kind: 'choice', ...o }),
  rules: (o: Omit<RulesParam, 'kind'>): RulesParam => ({ kind: 'rules', ...o }),
  ops: (o: Omit<OpsParam, 'kind'>): OpsParam => ({ kind: 'ops', ...o }),
  string: (o: Omit<StringParam, 'kind'>): StringParam => ({ kind: 'string', ...o }),
};
