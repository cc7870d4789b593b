// The demo's workload: ordinary shell tools on the mount, each in its own process (the
// daemon is another process; nothing here shares its event loop). The same script runs
// against a plain tmpfs directory, the reference the mount and every replica must equal.
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Deterministic, incompressible-looking bytes. */
function pattern(seed: number, n: number): Buffer {
  const b = Buffer.alloc(n);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

/** Source files on tmpfs: 4 KiB + 123 B, 200 KiB + 17 B, 3 MiB + 5 B. */
export function makeSources(dir: string): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'small.txt'), pattern(1, 4096 + 123));
  writeFileSync(join(dir, 'medium.bin'), pattern(2, 200 * 1024 + 17));
  writeFileSync(join(dir, 'large.bin'), pattern(3, 3 * 1024 * 1024 + 5));
  return dir;
}

/** Writes through the mount: create, overwrite in the middle, append, copy, rename, truncate, symlink, mkdir/rmdir. */
export const WRITE_SCRIPT = `
set -e
mkdir -p "$D/docs" "$D/data"
cp "$S/small.txt" "$D/docs/small.txt"
cp "$S/medium.bin" "$D/data/medium.bin"
dd if="$S/large.bin" of="$D/data/large.bin" bs=1M status=none
cat "$S/small.txt" >> "$D/docs/small.txt"
dd if="$S/medium.bin" of="$D/data/large.bin" bs=4k seek=100 conv=notrunc status=none
cp "$D/data/medium.bin" "$D/data/medium.copy"
mv "$D/data/medium.copy" "$D/docs/moved.bin"
truncate -s 70000 "$D/data/medium.bin"
ln -s ../data/large.bin "$D/docs/link"
mkdir "$D/scratch"; echo gone > "$D/scratch/x"; rm "$D/scratch/x"; rmdir "$D/scratch"
`;

/** Reads everything back from a cold cache. */
export const READ_SCRIPT = `
set -e
sync
echo 3 > /proc/sys/vm/drop_caches
cd "$D" && find . -type f | sort | xargs sha256sum
`;

export const LIST_SCRIPT = `cd "$D" && ls -lR --time-style=+ . | sed 's/^total .*//' && stat -c '%n %s %F' docs/small.txt data/large.bin docs/link`;

export async function sh(script: string, env: Record<string, string>): Promise<string> {
  try {
    const r = await run('/bin/sh', ['-c', script], { env: { ...process.env, ...env }, maxBuffer: 16 << 20 });
    return r.stdout;
  } catch (e) {
    const x = e as { stderr?: string; message: string };
    throw new Error(`workload step failed: ${x.stderr?.trim() || x.message}`);
  }
}

export interface WorkloadResult {
  /** `sha256sum` lines of every file read back through the directory. */
  sums: string;
  listing: string;
}

export async function runWorkload(dir: string, sources: string, step: (what: string) => void = () => {}): Promise<WorkloadResult> {
  const env = { D: dir, S: sources };
  step('write files (cp, dd, cat >>, mv, truncate, ln -s, mkdir/rmdir)');
  await sh(WRITE_SCRIPT, env);
  step('drop caches, read every file back (sha256sum)');
  const sums = await sh(READ_SCRIPT, env);
  const listing = await sh(LIST_SCRIPT, env);
  return { sums, listing };
}
