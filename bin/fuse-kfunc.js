#!/usr/bin/env node
// Runs the bundled CLI; in a checkout without a bundle (npm install --ignore-scripts),
// fall back to the TypeScript sources through tsx so the command still works.
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bundle = join(root, 'dist', 'cli.js');
if (existsSync(bundle)) {
  await import(pathToFileURL(bundle).href);
} else {
  await import('tsx/esm');
  await import(pathToFileURL(join(root, 'src', 'cli', 'main.ts')).href);
}
