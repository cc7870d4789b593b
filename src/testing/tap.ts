// Counting TAP results (ava --tap and kselftest_harness both speak it). Only top-level
// result lines count; a plan that promises more results than arrived counts the missing
// ones as failures, and SKIP/TODO are not passes.

export interface TapCount {
  passed: number;
  failed: number;
  skipped: number;
  planned?: number;
  missing: number;
  failures: string[];
}

export function countTap(text: string): TapCount {
  const c: TapCount = { passed: 0, failed: 0, skipped: 0, missing: 0, failures: [] };
  let results = 0;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '');
    const plan = /^1\.\.(\d+)/.exec(line);
    if (plan) { c.planned = (c.planned ?? 0) + Number(plan[1]); continue; }
    const m = /^(not )?ok\b\s*(\d+)?\s*(?:- )?(.*)$/.exec(line);
    if (!m) continue;
    results++;
    const directive = /#\s*(SKIP|TODO)\b/i.exec(m[3]);
    if (directive) { c.skipped++; c.failures.push(`${directive[1].toUpperCase()}: ${m[3]}`); continue; }
    if (m[1]) { c.failed++; c.failures.push(m[3]); } else c.passed++;
  }
  if (c.planned !== undefined && results < c.planned) c.missing = c.planned - results;
  return c;
}

/** What a suite contributes to the final "N passed, N failed" line. */
export function verdict(c: TapCount): { passed: number; failed: number } {
  return { passed: c.passed, failed: c.failed + c.skipped + c.missing };
}

/**
 * TAP written by a step of npm test itself (selftest-cli, vm-cli, doc-commands): one result
 * per check, a failed one followed by the last @tailLines lines of what it printed.
 */
export function tapWriter(tailLines = 15): { check: (ok: boolean, what: string, out?: string) => void; text: () => string } {
  const lines: string[] = [];
  let n = 0;
  return {
    check(ok, what, out) {
      lines.push(`${ok ? 'ok' : 'not ok'} ${++n} - ${what}`);
      if (!ok && out) for (const l of out.trimEnd().split('\n').slice(-tailLines)) lines.push(`# ${l}`);
    },
    text: () => [`1..${n}`, ...lines].join('\n') + '\n',
  };
}
