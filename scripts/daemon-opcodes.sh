#!/bin/bash
# The requests the C libfuse daemon (the bench's libfuse-c) receives on the untar + grep job,
# per opcode, counted from its -d output (docs/benchmarks.md, "Stop 23"). Run in the guest:
#   fuse-kfunc vm run -- env FIX=<fixtures dir> TAR=<srctree tarball> [OPTS=...] bash scripts/daemon-opcodes.sh
# FIX: ~/.cache/fuse-kfunc/fixtures/<build key> (passthrough_fuse); TAR:
# ~/.cache/fuse-kfunc/fixtures/srctree-<id>.tar (made by `fuse-kfunc bench`). OPTS unset: the
# daemon mounts as the bench mounts it (-o default_permissions,allow_other); OPTS= (empty):
# no options, as the bench mounted it until stop 23. The TypeScript daemon's counts per
# file are in the bench's raw JSON (byOpcode).
set -euo pipefail
: "${FIX:?FIX must name the fixtures directory}" "${TAR:?TAR must name the srctree tarball}"
read -r -a opts <<< "${OPTS--o default_permissions,allow_other}"
W=$(mktemp -d /tmp/daemon-opcodes.XXXXXX)
mkdir -p "$W/b" "$W/m"
PT_TIMEOUT=0 "$FIX/passthrough_fuse" "$W/b" "$W/m" -f -s -d ${opts[@]+"${opts[@]}"} 2> "$W/log" &
for _ in $(seq 100); do mountpoint -q "$W/m" && break; sleep 0.1; done
mountpoint -q "$W/m" || { echo "passthrough_fuse did not mount: $(tail -3 "$W/log")" >&2; exit 1; }
mkdir "$W/m/job"
tar -xf "$TAR" -C "$W/m/job"
echo "files with a match: $(grep -r -c -F static "$W/m/job" | wc -l)"
umount "$W/m"
wait
echo "options: ${opts[*]:-none}"
grep -o 'opcode: [A-Z_0-9]*' "$W/log" | sort | uniq -c | sort -rn
echo "total: $(grep -c 'opcode:' "$W/log")"
rm -rf "$W"
