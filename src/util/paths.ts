// Where things live: the repo this CLI belongs to and the cache outside it.
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The checkout: found by walking up from this module (src/util or dist/) to package.json. */
export function repoRoot(): string {
  if (process.env.FUSE_KFUNC_REPO) return resolve(process.env.FUSE_KFUNC_REPO);
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'kernel-patch'))) return dir;
    dir = dirname(dir);
  }
  throw new Error('cannot find the fuse-kfunc checkout (no package.json + kernel-patch/ above ' +
    fileURLToPath(import.meta.url) + '); set FUSE_KFUNC_REPO');
}

/** Cache dir outside the repo, so a clean clone or `git clean` keeps the kernel build. */
export function cacheDir(): string {
  return resolve(process.env.FUSE_KFUNC_CACHE ?? join(homedir(), '.cache', 'fuse-kfunc'));
}

export const cachePaths = (cache = cacheDir()) => ({
  root: cache,
  worktree: join(cache, 'linux'),
  obj: join(cache, 'obj'),
  tools: join(cache, 'tools'),
  builds: join(cache, 'builds'),
  logs: join(cache, 'logs'),
  policies: join(cache, 'policies'),
});
