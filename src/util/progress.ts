// Progress for long steps: a live status line on a terminal, a heartbeat line every
// 30 s otherwise (CI logs), never the raw compiler flood (that goes to the log file).
const isTTY = () => Boolean(process.stderr.isTTY) && !process.env.CI;

export function fmtDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
}

export class Progress {
  private start = Date.now();
  private last = '';
  private timer: NodeJS.Timeout;
  private lastBeat = Date.now();

  constructor(private phase: string, private heartbeatMs = 30_000) {
    process.stderr.write(`==> ${phase}\n`);
    this.timer = setInterval(() => this.tick(), isTTY() ? 500 : 1000);
    this.timer.unref();
  }

  /** Feed a line of the step's output; only the latest is shown. */
  line(text: string): void {
    const t = text.trim();
    if (t) this.last = t;
  }

  private tick(): void {
    const el = fmtDuration(Date.now() - this.start);
    if (isTTY()) {
      const cols = process.stderr.columns || 100;
      const msg = `  [${this.phase} ${el}] ${this.last}`.slice(0, cols - 1);
      process.stderr.write(`\r\x1b[K${msg}`);
    } else if (Date.now() - this.lastBeat >= this.heartbeatMs) {
      this.lastBeat = Date.now();
      process.stderr.write(`  ... ${this.phase}: ${el} elapsed; last: ${this.last.slice(0, 160)}\n`);
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
