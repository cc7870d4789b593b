import test from 'ava';
import { buildKey, seriesHash } from '../../src/kernel/series.ts';
import { parseBase, makefileVersion } from '../../src/kernel/base.ts';
import { parseFragment, checkConfig } from '../../src/kernel/config.ts';

const inputs = () => ({
  base: 'package=linux-source-6.12\nkernel_version=6.12.117\n',
  baseFound: '6.12.117',
  patches: [{ name: '0001-a.patch', content: 'A' }, { name: '0002-b.patch', content: 'B' }],
  fragment: 'CONFIG_BPF=y\n',
});

test('the build key is stable for the same inputs', (t) => {
  t.is(buildKey(inputs()), buildKey(inputs()));
  t.regex(buildKey(inputs()), /^[0-9a-f]{16}$/);
});

test('the build key changes with each input', (t) => {
  const k = buildKey(inputs());
  const variants = [
    { ...inputs(), base: inputs().base + 'x' },
    { ...inputs(), baseFound: '6.12.118' },
    { ...inputs(), fragment: 'CONFIG_BPF=n\n' },
    { ...inputs(), patches: [{ name: '0001-a.patch', content: 'A2' }, { name: '0002-b.patch', content: 'B' }] },
    { ...inputs(), patches: [inputs().patches[1], inputs().patches[0]] },
    { ...inputs(), patches: [inputs().patches[0]] },
  ];
  const keys = new Set([k, ...variants.map(buildKey)]);
  t.is(keys.size, variants.length + 1);
});

test('series hash separates names from contents', (t) => {
  t.not(seriesHash([{ name: 'ab', content: 'c' }]), seriesHash([{ name: 'a', content: 'bc' }]));
});

test('BASE parses and names what is missing', (t) => {
  const b = parseBase('# c\npackage=p\npackage_version=1\nkernel_version=6.12.1\ntarball=/x.tar.xz\n');
  t.deepEqual(b, { package: 'p', packageVersion: '1', kernelVersion: '6.12.1', tarball: '/x.tar.xz' });
  t.throws(() => parseBase('package=p\n'), { message: /missing "package_version="/ });
  t.throws(() => parseBase('garbage\n'), { message: /not key=value/ });
});

test('kernel version comes from the Makefile', (t) => {
  t.is(makefileVersion('VERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 117\nEXTRAVERSION =\nNAME = Baby Opossum Posse\n'), '6.12.117');
  t.is(makefileVersion('VERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 0\nEXTRAVERSION = -rc3\n'), '6.12.0-rc3');
  t.throws(() => makefileVersion('all:\n'), { message: /not a kernel Makefile/ });
});

test('config check reports options Kconfig dropped or changed', (t) => {
  const want = parseFragment('# comment\nCONFIG_A=y\nCONFIG_B="x"\n# CONFIG_C is not set\nCONFIG_D=y\n');
  t.is(want.length, 4);
  const missing = checkConfig(want, 'CONFIG_A=y\nCONFIG_B="y"\nCONFIG_C=y\n# CONFIG_D is not set\n');
  t.deepEqual(missing, ['CONFIG_B: wanted "x", got "y"', 'CONFIG_C: wanted n, got y', 'CONFIG_D: wanted y, got not set']);
  t.deepEqual(checkConfig(want, 'CONFIG_A=y\nCONFIG_B="x"\nCONFIG_D=y\n'), []);
  t.throws(() => parseFragment('BPF=y\n'), { message: /cannot parse "BPF=y"/ });
});
