// The union policy as BPF C: the placed-file program (placed.ts); a file open from a lower
// layer is read-only there (the daemon copies it up before any open for writing).
import type { UnionPolicy } from '../spec.ts';
import { placedProgram } from './placed.ts';

export function generateUnion(spec: UnionPolicy): string {
  return placedProgram(spec, `
Backing 0 is the writable upper directory, backings 1..${spec.backings - 1} the read-only
lowers, highest first.  The daemon (src/policy/union.ts) resolves names
through the layers (whiteouts, opaque directories), copies a lower file
up before it is opened for writing, and at a file's first OPEN publishes
the backing id of the file in its topmost layer, at that layer's index.
This program serves READ, WRITE, GETATTR and the xattr reads of open
files from it, and counts what it moved per layer.  A WRITE to a lower
layer cannot happen (the open copied the file up); if one comes, it is
refused, never written through.`, {
    writeGuard: `\tif (i != 0)
\t\treturn -EROFS;\t/* lower layers are read-only */
`,
  });
}
