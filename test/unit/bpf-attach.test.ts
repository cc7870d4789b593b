import test from 'ava';
import { ioc, FUSE_DEV_IOC_BPF_ATTACH, FUSE_DEV_IOC_BPF_DETACH } from '../../src/bpf/attach.ts';

test('ioctl numbers follow the asm-generic encoding', (t) => {
  // FUSE_DEV_IOC_BACKING_CLOSE is _IOW(229, 2, uint32_t) = 0x4004e502 in the 6.12 uapi header.
  t.is(ioc(1, 229, 2, 4), 0x4004e502);
  t.is(FUSE_DEV_IOC_BPF_ATTACH, 0x4004e540);
  t.is(FUSE_DEV_IOC_BPF_DETACH, 0x0000e541);
});
