"""Sums `perf report --sort sym` lines ("  1.23%  [.] symbol") into the categories
docs/fuse-server.md reports: V8's optimizing compiler, its GC, builtins, JIT code, the
rest of V8 and node, koffi, the kernel. Reads stdin (scripts/daemon-profile.sh)."""
import collections
import re
import sys

RULES = [
    ('kernel', lambda k, s: k == 'k'),
    ('v8 optimizing compiler', lambda k, s: 'compiler::' in s or 'OptimizedCompilationJob' in s),
    ('v8 gc', lambda k, s: re.search(r'Marking|Scaveng|Sweep|heap::|Heap::|Evacuat|Remembered|MemoryChunk|PagedSpace|NewSpace', s)),
    ('JIT code', lambda k, s: s.startswith('JS:')),
    ('v8 builtins', lambda k, s: s.startswith('Builtins_')),
    ('v8 interpreter, parser, baseline', lambda k, s: re.search(r'interpreter::|Bytecode|Parser|Scanner|baseline::', s)),
    ('v8 and node runtime', lambda k, s: s.startswith(('v8::', 'node::', 'napi_'))),
    ('koffi', lambda k, s: s.startswith('K::') or 'koffi' in s),
]

total = collections.Counter()
for line in sys.stdin:
    m = re.match(r'\s+([\d.]+)%\s+\[(.)\]\s+(.*)', line)
    if not m:
        continue
    pct, kind, sym = float(m.group(1)), m.group(2), m.group(3)
    total[next((name for name, rule in RULES if rule(kind, sym)), 'other (libc, ...)')] += pct
for name, pct in total.most_common():
    print(f'{pct:6.2f}%  {name}')
