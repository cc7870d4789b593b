// Child processes: quiet ones whose output goes to a log file (with progress), and
// small ones whose output we need.
import { spawn, spawnSync, type SpawnOptions } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { Progress } from './progress.ts';

export class CommandError extends Error {
  constructor(message: string, readonly logFile?: string, readonly tail: string[] = []) {
    super(message);
    this.name = 'CommandError';
  }
}

export interface LoggedOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  log: string;           // full output goes here (appended)
  phase: string;         // shown in progress and errors
  /** Output lines a complete run prints, if known: progress then shows a percentage and an ETA. */
  expectLines?: number;
}

/** Run a long command with its output to a log file and a progress line on stderr. */
export async function runLogged(cmd: string, args: string[], o: LoggedOptions): Promise<number> {
  mkdirSync(dirname(o.log), { recursive: true });
  const log = createWriteStream(o.log, { flags: 'a' });
  log.write(`\n$ ${cmd} ${args.join(' ')}\n`);
  const p = new Progress(o.phase, 30_000, o.expectLines);
  const tail: string[] = [];
  const child = spawn(cmd, args, { cwd: o.cwd, env: o.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let partial = '';
  const onData = (b: Buffer) => {
    log.write(b);
    const text = partial + b.toString('utf8');
    const lines = text.split('\n');
    partial = lines.pop() ?? '';
    for (const l of lines) {
      p.line(l);
      tail.push(l);
      if (tail.length > 30) tail.shift();
    }
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const code: number = await new Promise((res, rej) => {
    child.on('error', rej);
    child.on('close', (c) => res(c ?? 128));
  });
  await new Promise<void>((r) => log.end(r));
  if (code !== 0) {
    p.fail();
    const lines = tail.filter((l) => /error|Error|ERROR|undefined reference|No rule|fatal/.test(l));
    const shown = (lines.length ? lines : tail).slice(-12);
    throw new CommandError(`${o.phase} failed (exit ${code}); full log: ${o.log}\n` +
      shown.map((l) => `    ${l}`).join('\n'), o.log, tail);
  }
  return p.done();
}

/** Run a short command and return its stdout; throw with stderr on failure. */
export function capture(cmd: string, args: string[], opts: SpawnOptions & { input?: string } = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 256 << 20, ...opts } as any);
  if (r.error) throw new CommandError(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) {
    throw new CommandError(`${cmd} ${args.join(' ')} failed (exit ${r.status}):\n${String(r.stderr ?? '').trim()}`);
  }
  return String(r.stdout ?? '');
}

export function which(cmd: string): string | undefined {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}
