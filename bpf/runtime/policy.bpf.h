/* SPDX-License-Identifier: GPL-2.0 */
/*
 * policy.bpf.h - the kernel-side runtime every compiled policy links with.
 *
 * A policy module (src/policy/builtin/, or a user's my-policy.ts) is compiled
 * to one C file: this header, the policy's parameters as const volatile
 * globals, its decision functions translated from TypeScript, and the
 * runtime of its family (layout.bpf.h, ...) that serves the requests and
 * calls those functions where a choice is made.  Everything here is fixed,
 * hand-written C; only the decisions are generated.
 *
 * The maps are the program-daemon contract (fuse_kfunc_daemon.h): the daemon
 * publishes an open file's backing ids in "nodes" and reads "backing_stats".
 */
#ifndef __FUSE_KFUNC_POLICY_BPF_H
#define __FUSE_KFUNC_POLICY_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "fuse_kfunc.h"
#include "fuse_kfunc_stats.h"
#include "fuse_kfunc_daemon.h"

char LICENSE[] SEC("license") = "GPL";

#ifndef __maybe_unused
#define __maybe_unused		__attribute__((__unused__))
#endif

#define EIO			5
#define EOPNOTSUPP		95

/*
 * Set by the loader before load, like every parameter (the verifier then
 * sees them as constants): how many backing directories the mount has, and
 * the seconds the kernel may cache attributes the program returns.
 */
const volatile __u32 policy_backings = 1;
const volatile __u64 policy_attr_timeout = 1;

#include "policy_math.h"

/* What a layout's policy_locate() answers: where a logical byte lives */
struct policy_segment {
	__s64 backing;		/* index of the backing directory */
	__s64 offset;		/* byte offset in that backing's file */
	__s64 length;		/* bytes contiguous from there on */
};

/*
 * "nodes" (fuse_kfunc_daemon.h): the daemon publishes an open file's backing
 * ids at its first OPEN and deletes the entry at its last RELEASE.  No entry:
 * the file is not open, the request goes up.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);			/* nodeid */
	__type(value, struct fuse_kfunc_node);
} nodes SEC(".maps");

/* Per backing directory, what this program moved (fuse-kfunc stats) */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FUSE_KFUNC_MAX_BACKINGS);
	__type(key, __u32);
	__type(value, struct fuse_kfunc_backing_stats);
} backing_stats SEC(".maps");

static __always_inline void count_io(__u32 i, bool write, int ret)
{
	struct fuse_kfunc_backing_stats *st = bpf_map_lookup_elem(&backing_stats, &i);

	if (!st)
		return;
	if (ret < 0) {
		__sync_fetch_and_add(&st->errors, 1);
	} else if (write) {
		__sync_fetch_and_add(&st->writes, 1);
		__sync_fetch_and_add(&st->write_bytes, ret);
	} else {
		__sync_fetch_and_add(&st->reads, 1);
		__sync_fetch_and_add(&st->read_bytes, ret);
	}
}

/*
 * GETXATTR and LISTXATTR from backing @id.  The kernel asks for
 * security.capability before every write (FUSE clears SB_NOSEC): serving it
 * here keeps writes off the daemon.  The daemon sets attributes on the first
 * backing directory's file, so that is where they are read.
 */
static int serve_xattr(struct fuse_bpf_ctx *fctx, struct fuse_args *args,
		       __u32 id)
{
	struct bpf_file *fb = bpf_fuse_backing_get(fctx, id);
	int ret;

	if (!fb)
		return -EIO;
	ret = fuse_serve_getxattr(fctx, args, fb);
	bpf_file_release(fb);
	return ret;
}

/* Calls to move one request: a regular file is short only at its end */
#define IO_MAX_CALLS		16

/*
 * Move the request's @size bytes at @pos to or from backing id @id.
 * Returns the bytes moved (short at the end of the file) or -errno.
 * A subprogram of its own; families that move a request piece by piece
 * (layout.bpf.h) do not call it.
 */
static __maybe_unused int backing_io(struct fuse_bpf_ctx *fctx, __u32 id,
				     bool write, __u64 pos, __u32 size)
{
	struct bpf_file *fb;
	__u32 done = 0;
	int c, ret = 0;

	fb = bpf_fuse_backing_get(fctx, id);
	if (!fb)
		return -EIO;	/* id closed behind our back */
	/*
	 * A plain bounded loop: the verifier walks its 16 rounds, where
	 * bpf_for() would have to prove rounds with different byte counts
	 * equivalent, and does not.
	 */
	for (c = 0; c < IO_MAX_CALLS && done < size; c++) {
		if (write)
			ret = bpf_fuse_write(fctx, fb, pos + done, done, size - done);
		else
			ret = bpf_fuse_read(fctx, fb, pos + done, done, size - done);
		if (ret <= 0)
			break;
		done += ret;
	}
	bpf_file_release(fb);
	return ret < 0 ? ret : done;
}

/*
 * The backing id at index @i of @n, chosen by comparison from values read
 * into registers once: indexing n->backing[i] with an index computed from the
 * request offset would make the verifier track that offset precisely, and a
 * loop over a request's pieces would never converge.  barrier_var() keeps
 * clang from folding the choice back into an indexed load.
 */
static __always_inline __u32 node_backing(struct fuse_kfunc_node *n, __s64 i)
{
	__u32 id0 = n->backing[0], id1 = n->backing[1];
	__u32 id2 = n->backing[2], id3 = n->backing[3];

	barrier_var(id0);
	barrier_var(id1);
	barrier_var(id2);
	barrier_var(id3);
	return i == 0 ? id0 : i == 1 ? id1 : i == 2 ? id2 : i == 3 ? id3 : 0;
}

_Static_assert(FUSE_KFUNC_MAX_BACKINGS == 4, "node_backing() chooses among 4 ids");

#endif /* __FUSE_KFUNC_POLICY_BPF_H */
