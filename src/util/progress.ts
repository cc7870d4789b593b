// Progress for long steps: a live status line on a terminal, a heartbeat line every
// 30 s otherwise (CI logs), never the raw compiler flood (that goes to the log file).
const isTTY = () => Boolean(process.stderr.isTTY) && !process.env.CI;

export function fmtDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
}

/**
 * How far a step that prints about @expected lines has come after @seen of them in
 * @elapsedMs, and when it should end; undefined until there is something to go on.
 */
export function eta(elapsedMs: number, seen: number, expected: number): string | undefined {
  if (seen < 20 || elapsedMs < 5000 || expected <= 0) return undefined;
  if (seen >= expected) return '~99%, finishing';
  const pct = Math.floor((100 * seen) / expected);
  return `~${pct}%, ETA ${fmtDuration((elapsedMs * (expected - seen)) / seen)}`;
}

export class Progress {
  private start = Date.now();
  private last = '';
  private timer: NodeJS.Timeout;
  private lastBeat = Date.now();
  private seen = 0;

  constructor(private phase: string, private heartbeatMs = 30_000, private expectLines?: number) {
    process.stderr.write(`==> ${phase}\n`);
    this.timer = setInterval(() => this.tick(), isTTY() ? 500 : 1000);
    this.timer.unref();
  }

  /** Feed a line of the step's output; only the latest is shown. */
  line(text: string): void {
    const t = text.trim();
    if (t) this.last = t;
    this.seen++;
  }

  private tick(): void {
    const ms = Date.now() - this.start;
    const left = this.expectLines ? eta(ms, this.seen, this.expectLines) : undefined;
    if (isTTY()) {
      const cols = process.stderr.columns || 100;
      const msg = `  [${this.phase} ${fmtDuration(ms)}${left ? `, ${left}` : ''}] ${this.last}`.slice(0, cols - 1);
      process.stderr.write(`\r\x1b[K${msg}`);
    } else if (Date.now() - this.lastBeat >= this.heartbeatMs) {
      this.lastBeat = Date.now();
      process.stderr.write(`  ... ${this.phase}: ${fmtDuration(ms)} elapsed${left ? ` (${left})` : ''}; last: ${this.last.slice(0, 160)}\n`);
    }
  }

  done(note = ''): number {
    clearInterval(this.timer);
    const ms = Date.now() - this.start;
    if (isTTY()) process.stderr.write('\r\x1b[K');
    process.stderr.write(`    ${this.phase}: done in ${fmtDuration(ms)}${note ? ` (${note})` : ''}\n`);
    return ms;
  }

  fail(): void {
    clearInterval(this.timer);
    if (isTTY()) process.stderr.write('\r\x1b[K');
  }
}
