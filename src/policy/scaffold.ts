// `fuse-kfunc policy new NAME [DIR]`: a policy module to start from, and its check as a test.
// The module is a working layout policy (the first `head` bytes of every file on backing 0,
// the rest striped over the others), commented where a user changes it.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PolicyError } from './spec.ts';

export function scaffoldPolicy(name: string, dir: string): string[] {
  if (!/^[a-z][a-z0-9_]{0,30}$/.test(name)) throw new PolicyError(`"${name}" is not a policy name: lower case letters, digits and _, starting with a letter (it names the BPF program)`);
  const file = join(dir, `${name}.ts`);
  const test = join(dir, `${name}.test.ts`);
  for (const f of [file, test]) if (existsSync(f)) throw new PolicyError(`${f} exists: choose another name or directory (nothing was written)`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(file, `// ${name}: a data-layout policy. The first \`head\` bytes of every file live on backing 0
// (say, a fast disk: file headers, small files), the rest in \`chunk\`-sized pieces striped
// over the other backings. fuse-kfunc compiles the three functions below to BPF C for the
// kernel and runs them as they are in the daemon; they are written in the policy subset
// (integers, Math.floor(a / b), Math.min/max, if/switch, bounded for loops: docs/policies.md).
//   fuse-kfunc policy check ${name}.ts
//   fuse-kfunc mount /srv/fast /srv/a /srv/b /mnt/x --policy ./${name}.ts --head 64k
import { definePolicy, param } from 'fuse-kfunc';

export default definePolicy({
  name: '${name}',
  summary: 'the head of each file on backing 0, the rest striped over the others',
  backings: { min: 2, max: 4 },
  params: {
    head: param.size({ doc: 'bytes of each file kept on backing 0', default: '64k', min: '4k', multipleOf: '4k' }),
    chunk: param.size({ doc: 'stripe size on the other backings', default: '64k', min: '4k', max: '64m', multipleOf: '4k' }),
  },
  layout: {
    // Where byte \`off\` of a file lives, and how many bytes from there are on the same backing.
    locate(off, p) {
      if (off < p.head) return { backing: 0, offset: off, length: p.head - off };
      const rest = off - p.head;
      const c = Math.floor(rest / p.chunk);
      const within = rest % p.chunk;
      const n = p.backings - 1;
      return { backing: 1 + (c % n), offset: Math.floor(c / n) * p.chunk + within, length: p.chunk - within };
    },
    // How long backing i's file is when the file is \`size\` bytes, fully written.
    backingSize(size, i, p) {
      if (i === 0) return Math.min(size, p.head);
      const rest = Math.max(size - p.head, 0);
      const n = p.backings - 1;
      const row = p.chunk * n;
      const rows = Math.floor(rest / row);
      return rows * p.chunk + Math.min(Math.max(rest - rows * row - (i - 1) * p.chunk, 0), p.chunk);
    },
    // The end of the file a non-empty backing file of \`size\` bytes at index i implies.
    logicalEnd(size, i, p) {
      if (i === 0) return size;
      const n = p.backings - 1;
      const k = Math.floor((size - 1) / p.chunk);
      return p.head + (k * n + i - 1) * p.chunk + size - k * p.chunk;
    },
  },
});
`);
  writeFileSync(test, `// ${name}'s check as a test: it compiles, its C answers as its TypeScript does on random
// inputs, it builds to a BPF object, and (in the VM, on the patched kernel) it loads.
// Run: node --import tsx --test ${name}.test.ts
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { checkPolicy, formatCheck } from 'fuse-kfunc';

test('${name}: policy check', () => {
  const r = checkPolicy(fileURLToPath(new URL('./${name}.ts', import.meta.url)));
  assert.ok(r.ok, formatCheck(r));
});
`);
  return [file, test];
}
