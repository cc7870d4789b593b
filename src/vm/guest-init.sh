#!/bin/sh
# PID 1 of the fuse-kfunc guest. The root is the host's / over 9p, read-only; this
# script gives the guest the writable and virtual filesystems a normal userspace needs,
# runs the job the host prepared, records its exit status and powers off.
# Why a shell script: it runs from the host's own /bin/sh, so the guest needs no image.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# HOME moves to tmpfs: /root itself stays the host's (read-only) so host caches there,
# such as the kernel build in ~/.cache/fuse-kfunc, are visible in the guest.
export HOME=/tmp/home LANG=C.UTF-8

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm 2>/dev/null
# What udev would add: without them `echo >> /dev/stdout` (kselftest's runner) writes a
# file on devtmpfs instead of the output.
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
for d in /tmp /run /var/tmp /var/lib /var/cache /var/log; do
	mount -t tmpfs -o mode=1777 tmpfs "$d" 2>/dev/null
done
mkdir -p -m 700 $HOME
mount -t bpf bpf /sys/fs/bpf
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
hostname fuse-kfunc-vm
ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up 2>/dev/null

# The job directory: a read-write 9p share holding cmd (the script to run), env and
# where rc is written back. The repo is shared read-write at its host path too.
mkdir -p /run/job
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 job /run/job
. /run/job/env
# mkdir: on the host they may sit under /tmp, which is a fresh tmpfs here.
if [ -n "$REPO" ]; then
	mkdir -p "$REPO"
	# A job caches the checkout (loose): the host leaves it alone while a job runs, and
	# node loading ava, tsx and their hundreds of files paid a 9p round trip per stat and
	# read without it (ava's CLI took 20 s to load, 2 s cached). A shell sees edits made
	# on the host at once (none).
	mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=${REPO_CACHE:-none} repo "$REPO"
fi
if [ -n "$CACHE" ]; then
	mkdir -p "$CACHE"
	mount -t 9p -o ro,trans=virtio,version=9p2000.L,msize=262144,cache=loose cache "$CACHE"
fi

# The booted kernel's own modules (fuse.ko: FUSE is a module, as distributions build it).
# The host's /lib/modules has nothing for this kernel, so no modprobe: insmod each one.
if [ -n "$FUSE_KFUNC_MODULES" ]; then
	for m in "$FUSE_KFUNC_MODULES"/*.ko; do
		[ -e "$m" ] || continue
		insmod "$m" || echo "fuse-kfunc-guest: insmod $m failed" > /dev/kmsg
	done
fi

out=/dev/ttyS1
err=/dev/ttyS2
stty -F $out raw -echo 2>/dev/null
stty -F $err raw -echo 2>/dev/null
echo "fuse-kfunc-guest: running job" > /dev/kmsg
cd "${JOB_CWD:-/}"
if [ -n "$INTERACTIVE" ]; then
	# -c: the serial port becomes bash's controlling terminal, so job control and ^C work.
	setsid -c -w /bin/bash -i </dev/ttyS1 >/dev/ttyS1 2>&1
	rc=$?
else
	/bin/sh /run/job/cmd </dev/null >$out 2>$err
	rc=$?
fi
echo "$rc" > /run/job/rc
sync
echo "fuse-kfunc-guest: job exited $rc" > /dev/kmsg
# No ACPI in this kernel, so no power-off: reboot at once (everything is synced) and
# QEMU, started with -no-reboot, exits.
echo b > /proc/sysrq-trigger
