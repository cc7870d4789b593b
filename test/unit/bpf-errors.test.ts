import test from 'ava';
import { errnoName, keyLogLines, VerifierError, BpfError } from '../../src/bpf/errors.ts';

test('errno values become names', (t) => {
  t.is(errnoName(-13), 'EACCES');
  t.is(errnoName(2), 'ENOENT');
  t.is(errnoName(9999), 'errno 9999');
  t.is(new BpfError('x', -1).code, 'EPERM');
});

test('the key lines of a verifier log are the ones before the statistics', (t) => {
  const log = ['func#0 @0', '0: R1=ctx() R10=fp0', ...Array.from({ length: 20 }, (_, i) => `${i + 1}: (b7) r0 = 0`),
    'invalid access to map value, value_size=8 off=8 size=8', 'R0 min value is outside of the allowed memory range',
    'processed 9 insns (limit 1000000) max_states_per_insn 0', ''].join('\n');
  const k = keyLogLines(log, 3);
  t.deepEqual(k, ['20: (b7) r0 = 0', 'invalid access to map value, value_size=8 off=8 size=8', 'R0 min value is outside of the allowed memory range']);
  const e = new VerifierError('oob', -13, log);
  t.regex(e.message, /^the verifier rejected program "oob": EACCES\n/);
  t.regex(e.message, /invalid access to map value/);
  t.notRegex(e.message, /processed 9 insns/);
});

test('a rejection without a log says so', (t) => {
  t.regex(new VerifierError('p', -22, '').message, /no verifier log/);
});
