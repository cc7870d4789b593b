// Runs the passthrough server as its own process:
//   node dist/serve.js BACKING MOUNTPOINT [--passthrough] [--debug] [--timeout S]
// (or src/fuse/serve.ts through tsx: src/util/bundles.mjs says which)
// A daemon in its own process is the normal shape for FUSE, and it lets a test (or any
// client) use synchronous fs calls on the mount without deadlocking against the server's
// event loop. With an IPC channel (child_process.fork) it reports readiness and answers
// { cmd: 'stats' } and { cmd: 'close' }.
import { mountFuse, type FuseHandle } from './index.ts';

interface Ipc {
  send(m: unknown): void;
}

async function main(argv: string[]): Promise<void> {
  const pos = argv.filter((a, i) => !a.startsWith('--') && argv[i - 1] !== '--timeout');
  const flag = (f: string) => argv.includes(f);
  const ti = argv.indexOf('--timeout');
  if (pos.length !== 2) {
    process.stderr.write('usage: serve.ts BACKING MOUNTPOINT [--passthrough] [--debug] [--timeout SECONDS]\n');
    process.exit(2);
  }
  const ipc = process.send ? (process as unknown as Ipc) : undefined;
  let h: FuseHandle;
  try {
    h = await mountFuse({
      backing: pos[0]!,
      mountpoint: pos[1]!,
      passthrough: flag('--passthrough'),
      debug: flag('--debug'),
      timeout: ti >= 0 ? Number(argv[ti + 1]) : undefined,
    });
  } catch (e) {
    process.stderr.write(`fuse-kfunc serve: ${(e as Error).message}\n`);
    ipc?.send({ error: (e as Error).message });
    process.exit(1);
  }
  ipc?.send({ ready: true, negotiated: { ...h.negotiated, flags: h.negotiated.flags.toString(16) } });
  if (!ipc) process.stderr.write(`fuse-kfunc: serving ${pos[0]} on ${pos[1]}\n`);
  process.on('message', (m: { cmd?: string }) => {
    if (m?.cmd === 'stats') ipc?.send({ stats: h.stats(), tables: h.tables() });
    else if (m?.cmd === 'close') void h.close();
  });
  const why = await h.closed;
  ipc?.send({ closed: why, stats: h.stats() });
  process.stderr.write(`fuse-kfunc: connection ended (${why})\n`);
  // The IPC channel would keep us alive; the server's work is done.
  process.exit(0);
}

void main(process.argv.slice(2));
