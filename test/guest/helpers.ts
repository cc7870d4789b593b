// Shared by guest tests: where the host put the fixtures, and a guard that the tests
// really are inside the project VM (running them on the host would test the wrong kernel).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export function fixture(name: string): string {
  const dir = process.env.FUSE_KFUNC_FIXTURES;
  if (!dir) throw new Error('FUSE_KFUNC_FIXTURES is not set: run guest tests through `fuse-kfunc test` (they need the VM)');
  return join(dir, name);
}

export function assertInGuest(): void {
  const release = readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
  if (!release.endsWith('-fuse-kfunc')) {
    throw new Error(`guest tests must run in the fuse-kfunc VM, but this kernel is ${release}: use \`npm test\``);
  }
}
