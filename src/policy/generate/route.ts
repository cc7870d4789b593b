// The route policy as BPF C: the placed-file program (placed.ts) with the rules in its
// header, so a reader sees where each name goes.
import { formatRules, type RoutePolicy } from '../spec.ts';
import { placedProgram } from './placed.ts';

export function generateRoute(spec: RoutePolicy): string {
  const rules = spec.rules.length
    ? spec.rules.map((r) => `  ${r.kind === 'ext' ? 'names ending in' : 'paths under'} ${r.match.padEnd(12)} -> backing ${r.to}`).join('\n')
    : '  (none: every file in backing 0)';
  return placedProgram(spec, `
Rules (first match wins, unmatched files in backing 0): ${formatRules(spec.rules)}
${rules}
The daemon (src/policy/route.ts) resolves names through these rules,
keeps directories in every backing directory, and at a file's first OPEN
publishes the backing id of its one file in "nodes" at the index of the
directory it lives in (0 elsewhere).  This program serves READ, WRITE,
GETATTR and the xattr reads of open files there and counts, per backing
directory, what it moved.`);
}
