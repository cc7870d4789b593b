// mount(): a FUSE mount of one or more backing directories, served by a daemon in a child
// process, in one of three modes:
//   userspace    every request goes to the TypeScript daemon (the default)
//   passthrough  upstream FUSE passthrough: FOPEN_PASSTHROUGH, the kernel does READ/WRITE
//   program      a user BPF program (struct fuse_bpf_ops; .bpf.c compiled here, or .bpf.o)
//                attached to this connection, serving what it chooses in the kernel
// stats() gives per opcode {kernel, daemon}; see stats.ts for where each number comes from.
//
// Inputs are checked before anything is mounted, and every failure after the mount
// unmounts again, so an error never leaves a mount behind.
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { repoRoot, cachePaths } from '../util/paths.ts';
import { nodeEntry } from '../util/bundles.mjs';
import { compileBpf, CompileError } from '../policy/compile.ts';
import { asModulePolicy, buildPolicy, isModulePolicy, moduleParams, type AnyPolicy, type BuildOptions } from '../policy/build.ts';
import { PolicyCompileError } from '../policy/compiler/translate.ts';
import { tsLines } from '../bpf/errors.ts';
import type { Policy } from '../policy/lang/define.ts';
import { PolicyError, makePolicy, validatePolicy, type PolicySpec } from '../policy/spec.ts';
import { scanStructOps } from './elf.ts';
import { mergeStats, type MountStats } from './stats.ts';
import type { DaemonCommand, DaemonMessage, DaemonModule, ServeConfig, ServeStats, Tables } from './daemon-ipc.ts';
import type { PerBacking } from './stats.ts';
import { umount2Async, MNT_DETACH } from '../fuse/libc.ts';
import type { GlobalValues } from '../bpf/globals.ts';

export interface MountOptions {
  /** Backing directories: [0] holds the namespace; several are kept in step (mirror). */
  backings: string[];
  mountpoint: string;
  /** A BPF program: `.bpf.c` (compiled with clang-19 against the running kernel) or `.bpf.o`. */
  program?: string;
  /** A policy: a built-in one (src/policy/spec.ts: makePolicy), or a policy module, given as
   *  what definePolicy() returned or as the path of its .ts file. Its program is compiled,
   *  cached and attached, and the daemon serves what it leaves with the same semantics;
   *  with `userspace`, the daemon alone (the policy's userspace reference). */
  policy?: PolicySpec | Policy | string;
  /** A policy module's parameter values, e.g. `{ chunk: '16k' }` (missing ones take their defaults). */
  params?: Record<string, string | number>;
  /** A policy module's attribute cache time for the GETATTRs its program serves (default 1 s). */
  attrTimeout?: number;
  /** The struct_ops map to attach, when the object has several. */
  structOps?: string;
  /** Global variables of `program` (its `const volatile` knobs) to set before it is
   *  loaded, e.g. `{ passthrough: 1 }` for tree.bpf.c. An unknown name fails the mount. */
  globals?: GlobalValues;
  /** Who serves a policy's names (LOOKUP, CREATE, MKDIR, RENAME, READDIR ...): 'daemon' (the
   *  default: the program serves open files' data and attributes) or 'kernel' (the program
   *  serves every request after INIT; the layout and replicas families, e.g. stripe, mirror). */
  names?: 'daemon' | 'kernel';
  /** Explicitly no program, no passthrough (the default when neither is given). */
  userspace?: boolean;
  /** Upstream FUSE passthrough (FOPEN_PASSTHROUGH); excludes `program`. */
  passthrough?: boolean;
  /** Kernel name/attribute cache timeout in seconds (default 1). */
  timeout?: number;
  /** Kernel build with bpftool and libbpf headers, for compiling `.bpf.c`
   *  (default $FUSE_KFUNC_BUILD, else ~/.cache/fuse-kfunc/builds/current). */
  buildDir?: string;
  /** Echo the daemon's stderr. */
  echo?: boolean;
}

export type MountMode = 'userspace' | 'passthrough' | 'program' | `${'userspace' | 'program'}+${string}`;

export interface MountHandle {
  readonly mountpoint: string;
  readonly mode: MountMode;
  /** The attached object (compiled from `program` if it was C), or null. */
  readonly object: string | null;
  /** The program fills fuse_kfunc_stats (kernel counts known). */
  readonly counting: boolean;
  /** Per opcode: served by the program in the kernel, and received by the daemon. */
  stats(): Promise<MountStats>;
  /** Detaches the program from the connection: every request goes to the daemon again,
   *  without remounting. The program and its maps stay loaded for attach(). */
  detach(): Promise<void>;
  /** Attaches the (detached) program again. */
  attach(): Promise<void>;
  /** A multi-backing policy: per backing directory, what the program and the daemon moved
   *  (after close(), the final figures). */
  backings(): Promise<PerBacking | undefined>;
  /** What the daemon holds: known nodes and open file/directory handles (leak checks). */
  tables(): Promise<Tables>;
  /** Fault injection (mounts of several backing directories): files opened from now on get
   *  no backing id for backing directory `backing`, so the program finds no file there (a
   *  mirror fails over to another replica; other policies send such requests up). */
  fault(backing: number): Promise<void>;
  /** Why the daemon stopped ('ENODEV' after an unmount), once `closed` resolved. */
  readonly closeReason: string | undefined;
  /** Unmounts and waits for the daemon to exit; resolves with the final stats. */
  close(): Promise<MountStats | undefined>;
  /** Resolves when the daemon exits (close(), an external umount, a signal). */
  readonly closed: Promise<void>;
  readonly child: ChildProcess;
}

/** A clear, user-facing error; `log` holds the verifier log for VerifierError. */
export class MountError extends Error {
  constructor(message: string, readonly kind: string, readonly log?: string, readonly diagnostics?: string[]) {
    super(message);
    this.name = 'MountError';
  }
}

export function checkRoot(uid = process.getuid?.() ?? 0): void {
  if (uid !== 0) throw new MountError('mount needs root: mount(2) of a FUSE filesystem, /dev/fuse, loading BPF and FUSE_DEV_IOC_BACKING_OPEN all need CAP_SYS_ADMIN', 'not-root');
}

/** Mount points of this namespace (/proc/self/mountinfo field 5, octal escapes undone). */
export function mountPoints(mountinfo = readFileSync('/proc/self/mountinfo', 'utf8')): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of mountinfo.split('\n')) {
    const f = line.split(' ');
    if (f.length < 10) continue;
    const sep = f.indexOf('-');
    const unesc = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    out.set(unesc(f[4]!), f[sep + 1] ?? '?');
  }
  return out;
}

function checkDir(p: string, what: string): string {
  let st;
  try {
    st = statSync(p);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new MountError(`${what} ${p} ${code === 'ENOENT' ? 'does not exist' : `cannot be used (${code})`}`, `${what.replace(/ .*/, '')}-missing`);
  }
  if (!st.isDirectory()) throw new MountError(`${what} ${p} is not a directory`, `${what.replace(/ .*/, '')}-not-dir`);
  return realpathSync(p);
}

/** Validates everything that can be validated without mounting; returns resolved paths. */
export function checkInputs(o: MountOptions): { backings: string[]; mountpoint: string } {
  if (!o.backings.length) throw new MountError('mount needs at least one backing directory', 'backing-missing');
  if (o.program !== undefined && o.passthrough) throw new MountError('program and passthrough exclude each other', 'usage');
  for (const [k, v] of Object.entries(o.globals ?? {})) {
    if (o.program === undefined) throw new MountError(`globals set variables of a program: "${k}" needs program`, 'usage');
    const bytes = Array.isArray(v) && v.every((b) => Number.isInteger(b) && b >= 0 && b < 256);
    if (!bytes && !(Number.isSafeInteger(v) && (v as number) >= 0)) throw new MountError(`global "${k}" wants a non-negative integer or an array of bytes, got ${JSON.stringify(v)}`, 'usage');
  }
  if (o.userspace && (o.program !== undefined || o.passthrough)) throw new MountError('userspace excludes program and passthrough', 'usage');
  if (o.policy) {
    if (o.program !== undefined || o.passthrough) throw new MountError('a policy brings its own program: it excludes program and passthrough', 'usage');
    const spec = typeof o.policy === 'object' && 'policy' in o.policy ? o.policy : undefined;
    if (spec) {
      try {
        validatePolicy(spec);
      } catch (e) {
        throw new MountError((e as Error).message, 'policy');
      }
      if (spec.backings !== o.backings.length) {
        throw new MountError(`the ${spec.policy} policy was made for ${spec.backings} backing directories, but ${o.backings.length} were given`, 'policy');
      }
      if (o.params || o.attrTimeout !== undefined) throw new MountError(`params and attrTimeout are for policy modules; the ${spec.policy} policy carries its parameters (makePolicy)`, 'usage');
    }
  } else if (o.params || o.attrTimeout !== undefined) {
    throw new MountError('params and attrTimeout set a policy module\'s parameters: add policy', 'usage');
  }
  if (o.names !== undefined && o.names !== 'daemon' && o.names !== 'kernel') {
    throw new MountError(`names is 'daemon' or 'kernel', got ${JSON.stringify(o.names)}`, 'usage');
  }
  if (o.names === 'kernel' && (!o.policy || o.userspace)) {
    throw new MountError(`names: 'kernel' is where a policy's program serves names: add policy${o.userspace ? ', without userspace (the daemon serves everything there)' : ''}`, 'usage');
  }
  if (o.passthrough && o.backings.length > 1) throw new MountError('passthrough serves one backing directory', 'usage');
  if (o.backings.length > 4) throw new MountError('at most 4 backing directories (mirror replicas)', 'usage');
  checkRoot();
  const backings = o.backings.map((b) => checkDir(b, 'backing directory'));
  const mountpoint = checkDir(o.mountpoint, 'mountpoint');
  const fstype = mountPoints().get(mountpoint);
  if (fstype !== undefined) throw new MountError(`mountpoint ${mountpoint} is busy: already a mount point (${fstype}); unmount it first`, 'mountpoint-busy');
  if (backings.includes(mountpoint)) throw new MountError(`mountpoint ${mountpoint} is also a backing directory`, 'usage');
  return { backings, mountpoint };
}

/** Compiles a .c program (or takes a .o) and finds the struct_ops map to attach. */
export function prepareProgram(program: string, structOps: string | undefined, buildDir?: string): { object: string; structOps: string } {
  const src = resolve(program);
  if (!existsSync(src)) throw new MountError(`program ${src} does not exist`, 'program-missing');
  let object = src;
  if (src.endsWith('.c')) {
    const build = kernelBuild(buildDir);
    const outDir = mkdtempSync(join(tmpdir(), 'fuse-kfunc-prog-'));
    try {
      object = compileBpf({ source: src, outDir, buildDir: build, repo: repoRoot() });
    } catch (e) {
      if (e instanceof CompileError) throw new MountError(e.message, 'compile', undefined, e.diagnostics);
      throw new MountError(`cannot compile ${src}: ${(e as Error).message}`, 'compile');
    }
  }
  let scan;
  try {
    scan = scanStructOps(readFileSync(object));
  } catch (e) {
    throw new MountError(`${object}: ${(e as Error).message}`, 'not-bpf');
  }
  const how = 'declare one: SEC(".struct_ops.link") struct fuse_bpf_ops my_ops = { .request = (void *)my_request, .name = "my" };';
  if (!scan.maps.length) throw new MountError(`${basename(object)} has no struct_ops map; ${how}`, 'no-struct-ops');
  if (!scan.fuseBpfOps) throw new MountError(`${basename(object)}'s struct_ops (${scan.maps.join(', ')}) is not a struct fuse_bpf_ops; ${how}`, 'no-struct-ops');
  if (structOps !== undefined && !scan.maps.includes(structOps)) {
    throw new MountError(`${basename(object)} has no struct_ops map "${structOps}" (it has ${scan.maps.join(', ')})`, 'no-struct-ops');
  }
  if (structOps === undefined && scan.maps.length > 1) {
    throw new MountError(`${basename(object)} has several struct_ops maps (${scan.maps.join(', ')}): choose one with structOps / --struct-ops`, 'no-struct-ops');
  }
  return { object, structOps: structOps ?? scan.maps[0]! };
}

function kernelBuild(buildDir?: string): string {
  return buildDir ?? process.env.FUSE_KFUNC_BUILD ?? join(cachePaths().builds, 'current');
}

/** The policy of a mount, as the build knows it: a built-in spec or a module instance. */
function mountPolicy(o: MountOptions): AnyPolicy | undefined {
  const p = o.policy;
  if (p === undefined) return undefined;
  if (typeof p === 'object' && 'policy' in p) return p;
  const file = typeof p === 'string' ? resolve(p) : p.sourceFile;
  return { module: file, params: o.params ?? {}, backings: o.backings.length, attrTimeout: o.attrTimeout ?? 1 };
}

function policyFailure(e: unknown, what: string): never {
  if (e instanceof MountError) throw e;
  if (e instanceof PolicyError) throw new MountError(e.message, 'policy');
  // The user's module outside the subset: their error, at their lines.
  if (e instanceof PolicyCompileError) throw new MountError(`${what} does not compile:\n${e.message}`, 'compile');
  // Generated code that does not compile is our bug, not the user's: say so.
  if (e instanceof CompileError) throw new MountError(`fuse-kfunc wrote C for ${what} that does not compile (a bug: please report it):\n${e.message}`, 'compile', undefined, e.diagnostics);
  throw new MountError(`cannot build ${what}: ${(e as Error).message}`, 'compile');
}

/** A policy's program, compiled (or taken from the cache). */
export function preparePolicy(p: AnyPolicy, buildDir?: string, opts: BuildOptions = {}): { object: string; structOps: string; source: string; globals: GlobalValues } {
  try {
    return buildPolicy(p, kernelBuild(buildDir), opts);
  } catch (e) {
    policyFailure(e, isModulePolicy(p) ? `the policy module ${p.module}` : `the ${p.policy} policy`);
  }
}

/** What the daemon runs of a policy's module (its functions and parameters). */
function daemonModule(p: AnyPolicy): DaemonModule {
  try {
    const r = moduleParams(asModulePolicy(p));
    const d = r.compiled.definition;
    return { name: d.name, family: r.compiled.family, js: r.compiled.js, context: r.context, minBackings: d.backings.min };
  } catch (e) {
    policyFailure(e, isModulePolicy(p) ? `the policy module ${p.module}` : `the ${p.policy} policy`);
  }
}

/**
 * V8 flags of the daemon process (its server and reader threads share them). Empty by
 * default; FUSE_KFUNC_DAEMON_V8_FLAGS (space-separated) sets them, to measure what a flag
 * does to the daemon (docs/fuse-server.md: JIT compilation on short jobs).
 */
export function daemonV8Flags(env = process.env): string[] {
  return (env.FUSE_KFUNC_DAEMON_V8_FLAGS ?? '').split(/\s+/).filter(Boolean);
}

export async function mount(o: MountOptions): Promise<MountHandle> {
  const { backings, mountpoint } = checkInputs(o);
  const policy = mountPolicy(o);
  // Several backing directories without a policy are kept identical: the mirror policy's
  // daemon (with the given program, if any, serving what it serves).
  const daemonPolicy = policy ?? (backings.length > 1 ? makePolicy('mirror', {}, backings.length) : undefined);
  const module = daemonPolicy ? daemonModule(daemonPolicy) : undefined;
  const prog: { object: string; structOps: string; globals?: GlobalValues } | undefined = policy && !o.userspace
    ? preparePolicy(policy, o.buildDir, { kernelNames: o.names === 'kernel' }) : o.program !== undefined ? prepareProgram(o.program, o.structOps, o.buildDir) : undefined;
  const repo = repoRoot();
  const entry = nodeEntry(repo, 'mount-serve');
  const globals = { ...prog?.globals, ...o.globals };
  const cfg: ServeConfig = { backings, mountpoint, object: prog?.object, structOps: prog?.structOps, globals, passthrough: !!o.passthrough, timeout: o.timeout, module };
  const child = fork(entry.file, [JSON.stringify(cfg)], { cwd: repo, execArgv: [...entry.execArgv, ...daemonV8Flags()], stdio: ['ignore', 'inherit', 'pipe', 'ipc'] });
  let err = '';
  child.stderr!.on('data', (d) => {
    err += d;
    if (o.echo) process.stderr.write(d);
  });
  const waiting: ((m: DaemonMessage & Record<string, any>) => void)[] = [];
  let last: ServeStats | undefined;
  let closeReason: string | undefined;
  child.on('message', (m: any) => {
    if (m?.closed) closeReason = String(m.closed);
    if (m?.closed && m.stats) last = m.stats; // also when unmounted by someone else
    waiting.shift()?.(m);
  });
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const next = () => new Promise<any>((res, rej) => {
    waiting.push(res);
    void exited.then((code) => rej(new MountError(`the mount daemon exited (${code})${err.trim() ? `:\n${err.trim()}` : ''}`, 'daemon')));
  });

  const ready = await next();
  if (!ready.ready) {
    await exited;
    const m = String(ready.error ?? 'the mount daemon failed');
    if (ready.name === 'VerifierError') {
      // A policy module's program: name the module's lines the verifier walked last.
      const at = tsLines(String(ready.log ?? ''));
      throw new MountError(at.length ? `${m}\n  at ${at.join(', ')} (the last TypeScript lines the verifier walked)` : m, 'verifier', ready.log);
    }
    if (/EBUSY|ENOTDIR|EACCES|EPERM/.test(m)) throw new MountError(`cannot mount on ${mountpoint}: ${m}`, 'mount');
    throw new MountError(m, ready.name === 'BpfError' ? 'bpf' : 'daemon', ready.log);
  }
  // A daemon that died (killed, crashed) leaves an aborted mount (ENOTCONN) in the tree:
  // take it away, so nothing stale is left behind.
  const closed = exited.then(async () => {
    if (mountPoints().get(mountpoint)?.startsWith('fuse')) await umount2Async(mountpoint, MNT_DETACH).catch(() => undefined);
  });
  const request = async (cmd: DaemonCommand): Promise<any> => {
    if (child.exitCode !== null || !child.connected) throw new MountError(`the mount on ${mountpoint} is gone`, 'closed');
    const p = next();
    child.send(cmd);
    const m = await p;
    if (m.error) throw new MountError(m.error, 'daemon');
    return m;
  };
  const ask = async (): Promise<ServeStats> => {
    if ((child.exitCode !== null || !child.connected) && last) return last;
    const m = await request({ cmd: 'stats' });
    last = m.stats;
    return m.stats;
  };
  const program = async (cmd: 'attach' | 'detach') => {
    if (!prog) throw new MountError(`${cmd}: the mount on ${mountpoint} has no program (mode ${ready.mode})`, 'usage');
    await request({ cmd });
  };
  const toStats = (s: ServeStats) => mergeStats(s.daemon, s.kernel);
  return {
    mountpoint,
    mode: ready.mode,
    object: prog?.object ?? null,
    counting: ready.counting,
    child,
    closed,
    get closeReason() { return closeReason; },
    stats: async () => toStats(await ask()),
    backings: async () => (await ask()).backings,
    detach: () => program('detach'),
    attach: () => program('attach'),
    tables: async () => (await request({ cmd: 'stats' })).tables,
    fault: async (backing: number) => void (await request({ cmd: 'fault', backing })),
    close: async () => {
      if (child.exitCode === null && child.connected) {
        const p = next().catch(() => undefined);
        child.send({ cmd: 'close' } satisfies DaemonCommand);
        const m = await p;
        if (m?.stats) last = m.stats;
      }
      await closed;
      return last ? toStats(last) : undefined;
    },
  };
}
