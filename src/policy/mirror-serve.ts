// The mirror daemon as its own process (a FUSE daemon must not do synchronous I/O on its
// own mount, and clients of the mount should not share its event loop):
//   node --import tsx src/policy/mirror-serve.ts MOUNTPOINT REPLICA0 REPLICA1... [--bpf OBJ] [--timeout S]
// REPLICA0 is the mount's backing directory. With --bpf the compiled mirror program is
// loaded and attached to the connection and serves READ/WRITE in the kernel; without it
// the daemon serves them (the userspace reference). Over an IPC channel it reports
// {ready} (or {error, log}) and answers {cmd:'stats'|'attach'|'detach'|'fault'|'close'}.
import { mountFuse, type FuseHandle } from '../fuse/index.ts';
import { VerifierError } from '../bpf/errors.ts';
import { MirrorDaemon } from './mirror.ts';
import { MirrorProgram } from './mirror-bpf.ts';

interface Ipc {
  send(m: unknown): void;
}

export interface MirrorStatsMessage {
  /** Requests the daemon received, by opcode name. */
  fuse: Record<string, number>;
  /** READ/WRITE the daemon served, per replica. */
  daemon: MirrorDaemon['counts'];
  /** The program's counters, when one was loaded. */
  bpf: ReturnType<MirrorProgram['counts']> | null;
  attached: boolean;
  openFiles: number;
  tables: { nodes: number; handles: number };
}

function parse(argv: string[]) {
  const opt = (f: string) => {
    const i = argv.indexOf(f);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const pos = argv.filter((a, i) => !a.startsWith('--') && !['--bpf', '--timeout'].includes(argv[i - 1] ?? ''));
  if (pos.length < 3) {
    process.stderr.write('usage: mirror-serve.ts MOUNTPOINT REPLICA0 REPLICA1... [--bpf OBJ] [--timeout SECONDS]\n');
    process.exit(2);
  }
  const t = opt('--timeout');
  return { mnt: pos[0]!, replicas: pos.slice(1), bpf: opt('--bpf'), timeout: t === undefined ? undefined : Number(t) };
}

async function main(argv: string[]): Promise<void> {
  const a = parse(argv);
  const ipc = process.send ? (process as unknown as Ipc) : undefined;
  const fail = (e: unknown): never => {
    const log = e instanceof VerifierError ? e.log : undefined;
    process.stderr.write(`mirror-serve: ${(e as Error).message}\n`);
    ipc?.send({ error: (e as Error).message, name: (e as Error).name, log });
    process.exit(1);
  };

  let prog: MirrorProgram | undefined;
  try {
    if (a.bpf) prog = MirrorProgram.load(a.bpf);
  } catch (e) {
    fail(e);
  }
  // Fault injection for demos and tests ({cmd:'fault', replica}): files opened from then on
  // get backing id 0 (never registered) for that replica, so the program's reads of it fail
  // and fail over; writes report the error.
  const faulty = new Set<number>();
  const sink = prog && {
    set: (nodeid: number, ids: number[]) => prog.sink.set(nodeid, ids.map((id, i) => (faulty.has(i) ? 0 : id))),
    delete: (nodeid: number) => prog.sink.delete(nodeid),
  };
  const daemon = new MirrorDaemon({ replicas: a.replicas, sink });
  let h!: FuseHandle;
  try {
    h = await mountFuse({
      backing: a.replicas[0]!,
      mountpoint: a.mnt,
      // Backing ids need a connection with FUSE_PASSTHROUGH; files never use it (mirror.ts).
      passthrough: !!prog,
      timeout: a.timeout,
      setup: daemon.install,
    });
  } catch (e) {
    fail(e);
  }
  try {
    // After INIT (the connection refuses programs before), before any client request.
    prog?.attach(h.device.fd);
  } catch (e) {
    await h.close();
    fail(e);
  }
  const stats = (): MirrorStatsMessage => ({
    fuse: h.stats(), daemon: daemon.counts, bpf: prog?.counts() ?? null, attached: prog?.attached ?? false,
    openFiles: daemon.openFiles, tables: h.tables(),
  });
  ipc?.send({ ready: true });
  if (!ipc) process.stderr.write(`mirror: serving ${a.replicas.join(' + ')} on ${a.mnt}${prog ? ' (BPF)' : ''}\n`);
  process.on('message', (m: { cmd?: string }) => {
    try {
      if (m?.cmd === 'stats') ipc?.send({ stats: stats() });
      else if (m?.cmd === 'detach') { prog?.detach(h.device.fd); ipc?.send({ ok: true }); }
      else if (m?.cmd === 'attach') { prog?.attach(h.device.fd); ipc?.send({ ok: true }); }
      else if (m?.cmd === 'fault') { faulty.add(Number((m as { replica?: number }).replica)); ipc?.send({ ok: true }); }
      else if (m?.cmd === 'close') void h.close();
    } catch (e) {
      ipc?.send({ error: (e as Error).message });
    }
  });
  const why = await h.closed;
  ipc?.send({ closed: why, stats: stats() });
  prog?.close();
  process.exit(0);
}

void main(process.argv.slice(2));
