#!/bin/bash
# Where the TypeScript daemon's CPU goes (docs/fuse-server.md, "Where the time goes"): a
# --userspace mount whose daemon runs with --perf-basic-prof (JIT frames named), one workload
# under `perf record -a -g` (the whole guest, at the tick), then the report per process and
# library, the daemon's share per category (scripts/daemon-profile-summary.py) and its top
# symbols. Run in the guest, under -icount so that the shares follow executed instructions:
#   fuse-kfunc vm run --icount -- env FIX=<fixtures dir> [TAR=<srctree tarball>] bash scripts/daemon-profile.sh stat|read|untar
# FIX: ~/.cache/fuse-kfunc/fixtures/<build key> (metaloop); TAR (untar only):
# ~/.cache/fuse-kfunc/fixtures/srctree-<id>.tar, made by `fuse-kfunc bench`.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:?usage: daemon-profile.sh stat|read|untar}
: "${FIX:?FIX must name the fixtures directory}"
W=$(mktemp -d /tmp/daemon-profile.XXXXXX)
mkdir -p "$W/b" "$W/m"
FUSE_KFUNC_DAEMON_V8_FLAGS=--perf-basic-prof node bin/fuse-kfunc.js mount --userspace --timeout 0 "$W/b" "$W/m" > "$W/mount.log" 2>&1 &
for _ in $(seq 150); do mountpoint -q "$W/m" && break; sleep 0.2; done
mountpoint -q "$W/m" || { echo "the mount did not come up: $(tail -3 "$W/mount.log")" >&2; exit 1; }
rec() { perf record -q -a -g -o "$W/perf.data" -- "$@"; }
case $what in
  stat)
    echo x > "$W/m/meta-file"
    "$FIX/metaloop" stat "$W/m/meta-file" 2000 > /dev/null # warm
    rec "$FIX/metaloop" stat "$W/m/meta-file" 60000 ;;
  read)
    fio --name=lay --directory="$W/m" --filename=data --size=16M --rw=write --bs=1M --direct=1 > /dev/null
    fio --name=warm --directory="$W/m" --filename=data --size=16M --ioengine=psync --rw=randread --bs=4k --direct=1 --time_based --runtime=3 > /dev/null
    rec fio --name=r --directory="$W/m" --filename=data --size=16M --ioengine=psync --rw=randread --bs=4k --direct=1 --time_based --runtime=10 --output-format=terse > /dev/null ;;
  untar)
    : "${TAR:?TAR must name the srctree tarball}"
    cp "$TAR" "$W/src.tar"; tar --version > /dev/null; grep --version > /dev/null
    mkdir "$W/m/job"
    rec bash -c "tar -xf '$W/src.tar' -C '$W/m/job' && grep -r -c -F static '$W/m/job' > /dev/null" ;;
  *) echo "unknown workload $what (stat, read or untar)" >&2; exit 2 ;;
esac
kill %1; wait || true
report() { perf report -i "$W/perf.data" --stdio --no-children -g none "$@" 2>/dev/null | grep -v '^#' | grep -v '^$'; }
echo "== per process and library"; report --sort comm,dso | head -14
echo "== the daemon (node) by category"; report --comm node --sort sym --percent-limit 0 | python3 scripts/daemon-profile-summary.py
echo "== the daemon's top symbols"; report --comm node --sort sym --percent-limit 0.5 | head -40
rm -rf "$W"
