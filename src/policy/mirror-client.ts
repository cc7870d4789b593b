// Starts the mirror daemon (mirror-serve.ts) as a child process and talks to it over IPC:
// what the demo and the guest tests use.
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { MirrorStatsMessage } from './mirror-serve.ts';
import { nodeEntry } from '../util/bundles.mjs';

export interface MirrorServer {
  readonly child: ChildProcess;
  stats(): Promise<MirrorStatsMessage>;
  attach(): Promise<void>;
  detach(): Promise<void>;
  /** Files opened from now on get an unusable backing id for this replica (BPF mode). */
  fault(replica: number): Promise<void>;
  /** Unmounts and waits for the daemon to exit; returns the final stats. */
  close(): Promise<MirrorStatsMessage | undefined>;
  stderr(): string;
}

export interface StartMirrorOptions {
  repo: string;
  mountpoint: string;
  replicas: string[];
  /** Compiled mirror.bpf.o; without it the daemon serves READ/WRITE itself. */
  bpfObject?: string;
  /** Kernel cache timeout in seconds (default 1). */
  timeout?: number;
  /** Echo the daemon's stderr (default: keep it for errors). */
  echo?: boolean;
}

export class MirrorStartError extends Error {
  constructor(message: string, readonly log?: string) {
    super(message);
    this.name = 'MirrorStartError';
  }
}

export async function startMirror(o: StartMirrorOptions): Promise<MirrorServer> {
  const entry = nodeEntry(o.repo, 'mirror-serve');
  if (!existsSync(entry.file)) throw new Error(`${entry.file} is missing`);
  const args = [o.mountpoint, ...o.replicas, ...(o.bpfObject ? ['--bpf', o.bpfObject] : []), ...(o.timeout !== undefined ? ['--timeout', String(o.timeout)] : [])];
  const child = fork(entry.file, args, { cwd: o.repo, execArgv: entry.execArgv, stdio: ['ignore', 'inherit', 'pipe', 'ipc'] });
  let err = '';
  child.stderr!.on('data', (d) => {
    err += d;
    if (o.echo) process.stderr.write(d);
  });
  const waiting: ((m: any) => void)[] = [];
  let last: any;
  child.on('message', (m: any) => {
    last = m;
    waiting.shift()?.(m);
  });
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const next = () => new Promise<any>((resolve, reject) => {
    waiting.push(resolve);
    void exited.then((code) => reject(new Error(`mirror daemon exited (${code}):\n${err.trim()}`)));
  });
  const ask = async (cmd: string, extra: object = {}) => {
    const p = next();
    child.send({ cmd, ...extra });
    const m = await p;
    if (m.error) throw new Error(`mirror daemon: ${cmd}: ${m.error}`);
    return m;
  };

  let ready;
  try {
    ready = await next();
  } catch (e) {
    if (last?.error) throw new MirrorStartError(last.error, last.log);
    throw e;
  }
  if (!ready.ready) {
    child.kill();
    throw new MirrorStartError(ready.error ?? 'mirror daemon failed to start', ready.log);
  }
  return {
    child,
    stats: async () => (await ask('stats')).stats,
    attach: async () => void (await ask('attach')),
    detach: async () => void (await ask('detach')),
    fault: async (replica) => void (await ask('fault', { replica })),
    close: async () => {
      if (child.exitCode !== null) return undefined;
      const p = next().catch(() => undefined);
      child.send({ cmd: 'close' });
      const m = await p;
      await exited;
      return m?.stats;
    },
    stderr: () => err,
  };
}
