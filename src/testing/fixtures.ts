// Small native programs the guest tests drive: a libfuse3 daemon and a libbpf loader,
// built on the host against the kernel build's libbpf and vmlinux.h.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { runLogged } from '../util/exec.ts';
import type { Artifacts } from '../kernel/build.ts';

export async function buildFixtures(repo: string, a: Artifacts, cache: string): Promise<string> {
  const src = join(repo, 'test', 'guest', 'fixtures');
  const out = join(cache, 'fixtures', a.key);
  mkdirSync(out, { recursive: true });
  const log = join(cache, 'logs', `fixtures-${a.key}.log`);
  await runLogged('make', ['-s', '-C', src, `OUT=${out}`, `LIBBPF_INCLUDE=${a.libbpfInclude}`,
    `LIBBPF_A=${join(a.libbpfLib, 'libbpf.a')}`, `VMLINUX_DIR=${a.dir}`, 'CLANG=clang-19'],
  { log, phase: 'build guest test fixtures' });
  return out;
}
