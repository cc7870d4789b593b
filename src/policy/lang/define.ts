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

export type ParamDecl = SizeParam | IntParam | ChoiceParam | RulesParam;

/** The value a declared parameter has inside the policy's functions. */
export type ParamValue<D> = D extends ChoiceParam<infer C> ? C : D extends RulesParam ? readonly NameRule[] : number;

/** Parameter values as the runtimes hold them (every kind), with `backings`. */
export type PolicyValues = Record<string, number | string | readonly NameRule[]> & { readonly backings: number };

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
};
