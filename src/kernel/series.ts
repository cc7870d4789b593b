// The patch series in kernel-patch/ and the cache key derived from it.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Bump when the build recipe changes in a way that makes old artifacts wrong. */
export const RECIPE_VERSION = 2;

export function seriesFiles(repo: string): string[] {
  const file = join(repo, 'kernel-patch', 'series');
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8').split('\n').map((l) => l.replace(/#.*/, '').trim()).filter(Boolean);
}

export function readSeries(repo: string): { name: string; content: string }[] {
  return seriesFiles(repo).map((name) => {
    const p = join(repo, 'kernel-patch', name);
    if (!existsSync(p)) throw new Error(`kernel-patch/series lists ${name}, but kernel-patch/${name} does not exist`);
    return { name, content: readFileSync(p, 'utf8') };
  });
}

export function seriesHash(patches: { name: string; content: string }[]): string {
  const h = createHash('sha256');
  for (const p of patches) h.update(`${p.name}\0${p.content}\0`);
  return h.digest('hex').slice(0, 16);
}

export interface KeyInputs {
  base: string;              // kernel-patch/BASE content
  baseFound: string;         // the version actually in the tarball
  patches: { name: string; content: string }[];
  fragment: string;          // kernel-patch/config.fragment content
}

/** Cache key of a build: same inputs, same artifacts. */
export function buildKey(i: KeyInputs): string {
  const h = createHash('sha256');
  h.update(`recipe ${RECIPE_VERSION}\0base ${i.base}\0found ${i.baseFound}\0`);
  h.update(`series ${seriesHash(i.patches)}\0fragment ${i.fragment}\0`);
  return h.digest('hex').slice(0, 16);
}
