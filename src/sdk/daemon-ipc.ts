// The messages between mount() (mount.ts) and the daemon it starts (mount-serve.ts, the one
// daemon entry point), over the child process's IPC channel. One type per direction, so
// neither side can send a field the other does not know.
import type { KernelCounts, PerBacking } from './stats.ts';
import type { GlobalValues } from '../bpf/globals.ts';
import type { PolicyValues } from '../policy/lang/define.ts';

/** argv[2] of the daemon, as JSON. */
export interface ServeConfig {
  backings: string[];
  mountpoint: string;
  /** Compiled object to load and attach (already checked for a struct_ops map). */
  object?: string;
  structOps?: string;
  /** Global variables of `object` to set before loading it. */
  globals?: GlobalValues;
  passthrough: boolean;
  timeout?: number;
  /** A policy module: its functions for the userspace runtime of its family. */
  module?: DaemonModule;
  /** Log every request and reply on stderr. */
  debug?: boolean;
}

/** What the daemon runs of a policy module: the functions compiled from the same source. */
export interface DaemonModule {
  name: string;
  family: string;
  /** The family's functions as a JavaScript object expression (compiler/emit.ts). */
  js: string;
  /** The parameters as the functions see them, with `backings`. */
  context: PolicyValues;
  minBackings: number;
}

export interface ServeStats {
  daemon: Record<string, number>;
  /** undefined: no program; null: the program has no fuse_kfunc_stats map. */
  kernel: Record<string, KernelCounts> | null | undefined;
  /** A multi-backing policy: what went to each backing directory. */
  backings?: PerBacking;
}

export interface Tables {
  /** Nodes the daemon knows and handles open: leak checks. */
  nodes: number;
  handles: number;
  /** Replies the kernel refused as unknown: a request answered twice, or interrupted
   *  before its answer (0 when nothing interrupts). */
  staleReplies: number;
}

/** mount() -> daemon */
export type DaemonCommand =
  | { cmd: 'stats' }
  /** Unmount; the daemon answers with `closed` and exits. */
  | { cmd: 'close' }
  /** The program leaves (or rejoins) the connection; the mount and the maps stay. */
  | { cmd: 'detach' }
  | { cmd: 'attach' }
  /** Fault injection: files opened from now on get no backing id for backing directory
   *  `backing` (the program finds none there: a mirror fails over, others send the
   *  request up). Several backings: the policy daemons only. */
  | { cmd: 'fault'; backing: number };

/** daemon -> mount() */
export type DaemonMessage =
  | { ready: true; mode: string; counting: boolean; publishes: boolean }
  /** Start failed (then the daemon exits), or a command was refused. */
  | { error: string; name?: string; log?: string }
  | { stats: ServeStats; tables: Tables }
  | { attached: boolean }
  | { faulted: number }
  /** The connection ended (close, an unmount by anyone, abort): the last stats. */
  | { closed: string; stats?: ServeStats };
