// The unpatched base kernel build: its cache key and the config check that tolerates
// exactly the options the series itself defines.
import test from 'ava';
import { checkUnpatchedConfig, seriesOnlyOptions, unpatchedKey } from '../../src/kernel/unpatched.ts';

const KCONFIG_PATCH = `diff --git a/fs/fuse/Kconfig b/fs/fuse/Kconfig
--- a/fs/fuse/Kconfig
+++ b/fs/fuse/Kconfig
@@ -1,3 +1,9 @@
 config FUSE_PASSTHROUGH
+config FUSE_BPF
+	def_bool y
+menuconfig FUSE_BPF_DEBUG
diff --git a/fs/fuse/bpf.c b/fs/fuse/bpf.c
+config NOT_KCONFIG
`;

test('unpatched build: options only the series defines are the ones tolerated', (t) => {
  t.deepEqual(seriesOnlyOptions([{ name: '0002.patch', content: KCONFIG_PATCH }]), ['CONFIG_FUSE_BPF', 'CONFIG_FUSE_BPF_DEBUG']);
  const frag = 'CONFIG_FUSE_FS=y\nCONFIG_FUSE_BPF=y\nCONFIG_BPF=y\n';
  const dot = 'CONFIG_FUSE_FS=y\n# CONFIG_BPF is not set\n';
  t.deepEqual(checkUnpatchedConfig(frag, dot, ['CONFIG_FUSE_BPF']), ['CONFIG_BPF: wanted y, got not set']);
  t.deepEqual(checkUnpatchedConfig(frag, dot + 'CONFIG_BPF=y\n', ['CONFIG_FUSE_BPF']), []);
});

test('unpatched build key: base and fragment only, prefixed', (t) => {
  const k = unpatchedKey('package=x', '6.12.117', 'CONFIG_BPF=y\n');
  t.regex(k, /^base-[0-9a-f]{16}$/);
  t.is(k, unpatchedKey('package=x', '6.12.117', 'CONFIG_BPF=y\n'));
  t.not(k, unpatchedKey('package=x', '6.12.118', 'CONFIG_BPF=y\n'));
  t.not(k, unpatchedKey('package=x', '6.12.117', 'CONFIG_BPF=n\n'));
});
