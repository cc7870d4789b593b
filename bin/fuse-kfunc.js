#!/usr/bin/env node
// Runs the bundled CLI when it was built from the sources as they are; otherwise (a checkout
// installed with --ignore-scripts, or sources edited since `npm run build`) runs the
// TypeScript sources through tsx, so the command always does what the tree says.
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, join } from 'node:path';
import { nodeEntry, staleBundle } from '../src/util/bundles.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const entry = nodeEntry(root, 'cli');
if (entry.bundled) {
  await import(pathToFileURL(entry.file).href);
} else {
  if (existsSync(join(root, 'dist', 'cli.js'))) {
    process.stderr.write(`fuse-kfunc: ${staleBundle(root, 'cli')}: running the sources through tsx (\`npm run build\` makes it start fast again)\n`);
  }
  await import('tsx/esm');
  await import(pathToFileURL(entry.file).href);
}
