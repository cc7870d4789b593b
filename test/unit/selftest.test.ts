// `fuse-kfunc selftest`: the harness's -l listing, name and filter resolution, the guest
// command, and the lines that end a run.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  parseTestList, resolveSelection, harnessArgs, guestCommand, globToRegExp, filterMatches,
  tally, finalLines, bzImageVersion, SelectionError, type SelftestEntry,
} from '../../src/testing/selftest.ts';
import { shellQuote } from '../../src/vm/qemu.ts';

// `fuse_bpf_test -l` of the 31-patch series' build (6.12.118-fuse-kfunc), as printed (on
// stderr, exit 4): 8 tests in the fixture "global" (TEST()), 48 in "fbt" (TEST_F()).
const LISTING = `# FIXTURE            VARIANT                   TEST
global                                         verifier_rejects_leaked_ref
                                               verifier_rejects_use_after_release
                                               verifier_rejects_other_prog_type
                                               verifier_rejects_out_size_write
                                               verifier_rejects_sleep_in_nonsleepable
                                               verifier_rejects_leaked_lookup
                                               verifier_rejects_undestroyed_dir_iter
                                               verifier_rejects_mkdir_in_nonsleepable
--------------------------------------------------------------------------------
fbt                                            served_getattr
                                               served_read
                                               served_write
                                               served_setattr
                                               served_lookup_and_xattr
                                               served_backing_xattr
                                               served_tree
                                               served_fallocate_lseek_statfs
                                               fallback_to_daemon
                                               stripe_two_backing_files
                                               large_read
                                               readahead_served
                                               async_readahead_served
                                               background_upcall_keeps_creds
                                               writeback_background_upcall
                                               program_errors
                                               program_enosys_asks_daemon
                                               two_mounts_two_programs
                                               detach_under_load
                                               backing_close_while_cached
                                               abort_stops_program
                                               attach_requires_link
                                               ns_zero_daemon_tools
                                               ns_every_op
                                               ns_long_names_renames
                                               ns_atomic_o_trunc
                                               ns_large_dir
                                               ns_large_dir_plus
                                               ns_large_dir_plus_readdir
                                               ns_rename_exdev
                                               ns_escape
                                               ns_forget_churn
                                               ns_forget_race
                                               ns_detach
                                               union_whiteout
                                               union_large
                                               read_gap_zeroed
                                               long_lower_names_iterator
                                               long_lower_names_readdir
                                               shared_map_foreign_backing
                                               ns_idmapped_backing
                                               daemon_tagged_node_ids
                                               detach_while_other_mount_blocked
                                               ns_create_over_mount_and_fifo
                                               lookup_open_no_mount_no_fifo
                                               ns_unprivileged_caller
                                               ns_open_append_only
                                               readdir_checks_caller
`;

// kselftest_harness.h prints each row with printf("%-20s %-25s %s\n", ...).
const row = (f: string, v: string, t: string) => `${f.padEnd(20)} ${v.padEnd(25)} ${t}`;
const RULE = '-'.repeat(80);

const all = parseTestList(LISTING);
const names = (es: SelftestEntry[]) => es.map((e) => e.name);

test('the real listing: 56 tests, global.* then fbt.*, in the harness order', (t) => {
  t.is(all.length, 56);
  t.is(all.filter((e) => e.fixture === 'global').length, 8);
  t.is(all.filter((e) => e.fixture === 'fbt').length, 48);
  t.deepEqual(all[0], { fixture: 'global', variant: '', test: 'verifier_rejects_leaked_ref', name: 'global.verifier_rejects_leaked_ref' });
  t.is(all[7].name, 'global.verifier_rejects_mkdir_in_nonsleepable');
  t.is(all[8].name, 'fbt.served_getattr');
  t.is(all.at(-1)!.name, 'fbt.readdir_checks_caller');
  t.true(names(all).includes('fbt.read_gap_zeroed'));
  t.is(new Set(names(all)).size, 56);
  // Neither the header nor the rule between fixtures became a test.
  t.false(all.some((e) => /FIXTURE|TEST|VARIANT|^-/.test(e.test)));
});

test('variants: zipped rows expand to every test under every variant; wide names shift columns', (t) => {
  const text = [
    row('# FIXTURE', 'VARIANT', 'TEST'),
    row('layout', 'one', 'a'),
    row('', 'two', 'b'),
    row('', '', 'c'),
    RULE,
    row('many', 'v1', 'only'),
    row('', 'v2', ''),
    row('', 'a_variant_name_wider_than_25', ''),
    RULE,
    row('a_fixture_name_wider_than_20', '', 'solo'),
    row('', '', 'second'),
  ].join('\n') + '\n';
  t.deepEqual(names(parseTestList(text)), [
    'layout.one.a', 'layout.one.b', 'layout.one.c', 'layout.two.a', 'layout.two.b', 'layout.two.c',
    'many.v1.only', 'many.v2.only', 'many.a_variant_name_wider_than_25.only',
    'a_fixture_name_wider_than_20.solo', 'a_fixture_name_wider_than_20.second',
  ]);
  t.deepEqual(parseTestList('Usage: ./fuse_bpf_test [-h|-l]\n'), []);
  // Rows count only after the header; stray output among them is skipped.
  t.deepEqual(parseTestList(`${row('early', '', 'x')}\n${row('# FIXTURE', 'VARIANT', 'TEST')}\n${row('f', '', 'y')}\nlibbpf: some warning!\n`).map((e) => e.name), ['f.y']);
});

test('names: fixture.test or the bare test, in the harness order, duplicates once', (t) => {
  t.deepEqual(names(resolveSelection(all, { names: ['read_gap_zeroed'] })), ['fbt.read_gap_zeroed']);
  t.deepEqual(names(resolveSelection(all, { names: ['fbt.read_gap_zeroed'] })), ['fbt.read_gap_zeroed']);
  t.deepEqual(names(resolveSelection(all, { names: ['fbt.union_whiteout', 'verifier_rejects_leaked_ref', 'union_whiteout'] })),
    ['global.verifier_rejects_leaked_ref', 'fbt.union_whiteout']);
  t.is(resolveSelection(all, {}), all);
});

test('an unknown name is an error naming it and pointing at --list', (t) => {
  const e = t.throws(() => resolveSelection(all, { names: ['read_gap_zeroed', 'no_such_test'] }), { instanceOf: SelectionError });
  t.regex(e!.message, /"no_such_test"/);
  t.regex(e!.message, /--list/);
  t.notRegex(e!.message, /"read_gap_zeroed"/);
  // A fixture prefix that does not exist is unknown too, not matched by its test part.
  t.throws(() => resolveSelection(all, { names: ['global.read_gap_zeroed'] }), { message: /"global\.read_gap_zeroed"/ });
  // A part of a name: unknown, with the --filter that would match.
  t.throws(() => resolveSelection(all, { names: ['read_gap'] }), { message: /--filter read_gap matches 1/ });
});

test('--filter: substring of the full name, or a glob over the full or bare name', (t) => {
  const ns = names(all.filter((e) => e.test.startsWith('ns_')));
  t.is(ns.length, 16);
  t.deepEqual(names(resolveSelection(all, { filter: 'ns_*' })), ns);
  t.deepEqual(names(resolveSelection(all, { filter: 'fbt.ns_*' })), ns);
  t.deepEqual(names(resolveSelection(all, { filter: '*readahead_served' })), ['fbt.readahead_served', 'fbt.async_readahead_served']);
  // A glob is anchored: "readahead_served*" does not take async_readahead_served.
  t.deepEqual(names(resolveSelection(all, { filter: 'readahead_served*' })), ['fbt.readahead_served']);
  t.deepEqual(names(resolveSelection(all, { filter: 'large_dir' })), ['fbt.ns_large_dir', 'fbt.ns_large_dir_plus', 'fbt.ns_large_dir_plus_readdir']);
  t.is(resolveSelection(all, { filter: 'global.' }).length, 8);
  t.deepEqual(names(resolveSelection(all, { filter: 'union_,read_gap', names: ['served_read'] })),
    ['fbt.served_read', 'fbt.union_whiteout', 'fbt.union_large', 'fbt.read_gap_zeroed']);
  t.throws(() => resolveSelection(all, { filter: 'zzz*' }), { instanceOf: SelectionError, message: /"zzz\*" matches no selftest.*--list/ });
  t.throws(() => resolveSelection(all, { filter: ' , ' }), { instanceOf: SelectionError });
});

test('globs escape everything but * and ?', (t) => {
  t.true(globToRegExp('fbt.ns_?scape').test('fbt.ns_escape'));
  t.false(globToRegExp('fbt.ns_escape').test('fbtXns_escape'));
  t.false(filterMatches('fbt.ns_*', { fixture: 'x', variant: '', test: 'fbtXns_a', name: 'x.fbtXns_a' }));
  t.false(filterMatches('served_(read)', all.find((e) => e.test === 'served_read')!));
});

test('harness arguments: none for everything, -t per test, -r where -t would take more', (t) => {
  t.deepEqual(harnessArgs(all, all), []);
  const two = resolveSelection(all, { names: ['fbt.union_whiteout', 'read_gap_zeroed'] });
  t.deepEqual(harnessArgs(all, two), ['-t', 'union_whiteout', '-t', 'read_gap_zeroed']);
  t.deepEqual(harnessArgs(all, all.slice(1)), all.slice(1).flatMap((e) => ['-t', e.test]));
  // With variants, -t NAME would run the test under each: one variant needs -r.
  const v = parseTestList([row('# FIXTURE', 'VARIANT', 'TEST'), row('layout', 'one', 'a'), row('', 'two', 'b'), RULE, row('other', '', 'a')].join('\n'));
  t.deepEqual(harnessArgs(v, v.filter((e) => e.name === 'layout.two.a')), ['-r', 'layout.two.a']);
  t.deepEqual(harnessArgs(v, v.filter((e) => e.name.startsWith('layout.') && e.test === 'a')), ['-r', 'layout.one.a', '-r', 'layout.two.a']);
  t.deepEqual(harnessArgs(v, v.filter((e) => e.test === 'b')), ['-t', 'b']);
});

test('the guest command survives the shell, as runVm writes it, with odd characters', (t) => {
  const root = mkdtempSync(join(tmpdir(), 'selftest-unit-'));
  try {
    const dir = join(root, `sel tests 'x' $HOME`);
    mkdirSync(dir);
    const bin = join(dir, 'fuse_bpf_test');
    writeFileSync(bin, '#!/bin/sh\npwd\nfor a in "$@"; do printf "[%s]\\n" "$a"; done\n');
    chmodSync(bin, 0o755);
    const cmd = guestCommand(dir, ['-t', 'read_gap_zeroed', '-r', "odd name;'$x"]);
    t.is(cmd[0], 'sh');
    t.regex(cmd[2], /exec \.\/fuse_bpf_test -t read_gap_zeroed -r /);
    // runVm's job file: the argv quoted word by word, run by /bin/sh.
    const r = spawnSync('/bin/sh', ['-c', cmd.map(shellQuote).join(' ')], { encoding: 'utf8' });
    t.is(r.status, 0, r.stderr);
    t.deepEqual(r.stdout.split('\n'), [dir, '[-t]', '[read_gap_zeroed]', '[-r]', "[odd name;'$x]", '']);
    t.deepEqual(guestCommand('/s', []), ['sh', '-c', 'cd /s && exec ./fuse_bpf_test']);
  } finally { rmSync(root, { recursive: true, force: true }); }
});

const tap = (results: string[], plan = results.length) =>
  ['TAP version 13', `1..${plan}`, '# Starting tests', ...results, '# Totals: ...', ''].join('\n');

test('a clean run: the timing line, then "N passed, N failed" last; exit code material', (t) => {
  const o = tally(tap(all.map((e, i) => `ok ${i + 1} ${e.name}`)), 0);
  t.deepEqual(o, { passed: 56, failed: 0, ran: 56, notes: [] });
  t.deepEqual(finalLines(o, 112_000, 56, 56), ['selftests: 56 run in 1m52s (VM boot to exit)', '56 passed, 0 failed']);
  const sub = tally(tap(['ok 1 fbt.read_gap_zeroed', 'ok 2 fbt.union_whiteout']), 0);
  t.deepEqual(finalLines(sub, 41_400, 2, 56), ['selftests: 2 run (2 of 56 selected) in 41s (VM boot to exit)', '2 passed, 0 failed']);
});

test('failures, skips and missing results count as failed and are listed before the timing', (t) => {
  const o = tally(tap(['ok 1 fbt.a', 'not ok 2 fbt.b', 'ok 3 fbt.c # SKIP no fuse'], 5), 1);
  t.is(o.passed, 1);
  t.is(o.failed, 4);
  t.is(o.ran, 3);
  const lines = finalLines(o, 5000, 5, 5);
  t.deepEqual(lines.slice(0, 3), ['  - selftests: fbt.b', '  - selftests: SKIP: fbt.c # SKIP no fuse', '  - selftests: 2 planned result(s) never arrived']);
  t.is(lines.at(-2), 'selftests: 3 run in 5s (VM boot to exit)');
  t.is(lines.at(-1), '1 passed, 4 failed');
});

test('a nonzero exit without a failing result, or a VM failure, is a failure', (t) => {
  const crash = tally(tap(['ok 1 fbt.a']), 139);
  t.deepEqual([crash.passed, crash.failed], [1, 1]);
  t.regex(crash.notes[0], /exited 139 without a failing result/);
  const vm = tally(tap(['ok 1 fbt.a'], 3), 124, { failure: 'timeout', message: 'guest command timed out after 900s (stopped)\n--- last console lines ---' });
  t.deepEqual([vm.passed, vm.failed], [1, 3]);
  t.true(vm.notes.includes('vm: timeout: guest command timed out after 900s (stopped)'));
});

test('bzImageVersion reads the setup header, and nothing from other files', (t) => {
  const b = Buffer.alloc(0x4000);
  b.write('HdrS', 0x202, 'latin1');
  b.writeUInt16LE(0x3000 - 0x200, 0x20e);
  b.write('6.12.118-fuse-kfunc (fuse-kfunc@workbench) #10 SMP\0', 0x3000, 'latin1');
  t.is(bzImageVersion(b), '6.12.118-fuse-kfunc (fuse-kfunc@workbench) #10 SMP');
  b.write('XXXX', 0x202, 'latin1');
  t.is(bzImageVersion(b), undefined);
  t.is(bzImageVersion(Buffer.from('short')), undefined);
});
