// npm test prints the ten slowest guest tests, from the durations ava-durations.mjs adds.
import test from 'ava';
import { onDemand, slowestTests } from '../../src/testing/suite.ts';

test('the slowest tests first, ten at most, with the total; none without durations', (t) => {
  const tap = ['ok 1 - a › quick', '# duration 1200 ms a › quick',
    ...Array.from({ length: 12 }, (_, i) => [`ok ${i + 2} - b › t${i}`, `# duration ${(i + 2) * 10_000} ms b › t${i}`]).flat()].join('\n');
  const lines = slowestTests(tap);
  t.is(lines.length, 11);
  t.is(lines[0], '  2m10s  b › t11');
  t.is(lines[9], '    40s  b › t2');
  t.regex(lines[10], /^\(13 tests, 15m01s in all;/);
  t.deepEqual(slowestTests('ok 1 - x'), ['(no test durations in the output)']);
});

test('the longer runs\' knobs pass from the host to the guest tests; nothing else does', (t) => {
  t.deepEqual(onDemand({ FUSE_KFUNC_STRESS_SECONDS: '300', FUSE_KFUNC_POLICY_SEEDS: 'all', HOME: '/root', FUSE_KFUNC_OTHER: 'x' }),
    { FUSE_KFUNC_STRESS_SECONDS: '300', FUSE_KFUNC_POLICY_SEEDS: 'all' });
  t.deepEqual(onDemand({}), {});
});
