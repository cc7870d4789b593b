// BPF programs built with the pinned tree's libbpf load (and are rejected) in the guest.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { assertInGuest, fixture } from './helpers.ts';

test.before(() => assertInGuest());

test('a valid program loads and runs with BPF_PROG_RUN', (t) => {
  const r = spawnSync(fixture('bpf_load'), [fixture('sum.bpf.o')], { encoding: 'utf8' });
  t.is(r.status, 0, r.stderr + r.stdout);
  t.is(r.stdout.trim(), 'retval=42 sum=10');
});

test('the verifier rejects an out-of-bounds map read and the log says why', (t) => {
  const r = spawnSync(fixture('bpf_load'), [fixture('oob.bpf.o')], { encoding: 'utf8' });
  t.is(r.status, 3, r.stderr + r.stdout);
  t.regex(r.stdout, /invalid access to map value/);
});
