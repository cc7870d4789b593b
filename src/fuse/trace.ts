// FUSE_KFUNC_TRACE: where a request's time goes in the daemon, per opcode and per thread
// kind, in µs per request. Stages: `hop` from read(2) returning in a reader thread to the
// handler starting on the main thread (0 where the reader serves it), `handle` the handler
// with its calls on the backing filesystem, `reply` encoding and writing the answer.
import fs from 'node:fs';
import type { StageTimes } from './session.ts';

export interface TraceRow {
  op: string;
  /** main: the main thread's event loop; reader: a reader's fast READ/WRITE; server: a server thread. */
  where: string;
  n: number;
  hop: number;
  handle: number;
  reply: number;
}

export function traceRows(times: Map<string, StageTimes> | Record<string, StageTimes>, where: string): TraceRow[] {
  const us = (ns: number, n: number) => Math.round(ns / n / 100) / 10;
  const entries = times instanceof Map ? [...times] : Object.entries(times);
  return entries.map(([op, t]) => ({ op, where, n: t.n, hop: us(t.hop, t.n), handle: us(t.handle, t.n), reply: us(t.reply, t.n) }));
}

export function writeTrace(file: string, rows: TraceRow[]): void {
  try {
    fs.writeFileSync(file, JSON.stringify(rows.sort((a, b) => b.n - a.n), null, 1) + '\n');
  } catch (e) {
    process.stderr.write(`fuse-kfunc: cannot write the trace to ${file}: ${(e as Error).message}\n`);
  }
}
