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

#define EIO			5
#define EOPNOTSUPP		95

#define S_IFMT			0170000
#define S_IFREG			0100000

/*
 * Set by the loader before load, like every parameter (the verifier then
 * sees them as constants): how many backing directories the mount has, and
 * the seconds the kernel may cache attributes the program returns.
 */
const volatile __u32 policy_backings = 1;
const volatile __u64 policy_attr_timeout = 1;

#include "policy_math.h"
#include "policy_str.h"

/* What a layout's policy_locate() answers: where a logical byte lives */
struct policy_segment {
	__s64 backing;		/* index of the backing directory */
	__s64 offset;		/* byte offset in that backing's file */
	__s64 length;		/* bytes contiguous from there on */
};

/*
 * Value of "nodes" (fuse_kfunc_daemon.h): the daemon publishes an open
 * file's backing ids at its first OPEN and deletes the entry at its last
 * RELEASE; no entry: the file is not open, the request goes up.  The rest
 * is the runtime's: a reference to each backing file, taken at the first
 * request that needs it and kept in the entry, so that later requests,
 * concurrent ones included, take theirs from it under RCU instead of looking
 * the id up.  Replacing or deleting the entry drops the kept references, so
 * the daemon's last RELEASE still closes the files.  (Four named fields: the
 * verifier wants kptrs at constant offsets.)
 */
struct policy_node {
	__u32 backing[FUSE_KFUNC_MAX_BACKINGS];	/* ids, backing directory order */
	__u32 nr;				/* backing directories of the mount */
	__u32 unused;
	struct bpf_file __kptr *fb0;
	struct bpf_file __kptr *fb1;
	struct bpf_file __kptr *fb2;
	struct bpf_file __kptr *fb3;
};

FUSE_KFUNC_NODE_CHECK(struct policy_node);

#ifndef POLICY_KERNEL_NAMES
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);			/* nodeid */
	__type(value, struct policy_node);
} nodes SEC(".maps");
#endif

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
 * The backing id at index @i of @n, chosen by comparison from values read
 * into registers: indexing n->backing[i] with an index computed from the
 * request offset would make the verifier track that offset precisely, and a
 * loop over a request's pieces would never converge.  barrier_var() keeps
 * clang from folding the choice back into an indexed load.
 */
static __always_inline __u32 node_backing(struct policy_node *n, __s64 i)
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

/* The first index of @n with a backing id, or -1 */
static __always_inline __s64 node_first(struct policy_node *n)
{
	__s64 i;

	for (i = 0; i < FUSE_KFUNC_MAX_BACKINGS && i < policy_backings; i++)
		if (node_backing(n, i))
			return i;
	return -1;
}

static __always_inline struct bpf_file __kptr **node_slot(struct policy_node *n,
							   __s64 i)
{
	switch (i) {
	case 0: return &n->fb0;
	case 1: return &n->fb1;
	case 2: return &n->fb2;
	default: return &n->fb3;
	}
}

/*
 * A reference to the backing file at index @i of @n, which the caller
 * releases: the one kept in the entry if there is one, else by id (and then
 * kept for the next requests).  NULL when the id is gone (the daemon closed
 * it, or never had one there).
 */
static __always_inline struct bpf_file *backing_get(struct fuse_bpf_ctx *fctx,
						    struct policy_node *n, __s64 i)
{
	struct fuse_kfunc_backing_stats *st;
	struct bpf_file __kptr **slot;
	struct bpf_file *fb, *extra;
	__u32 key = i;

	if (i < 0 || i >= FUSE_KFUNC_MAX_BACKINGS)
		return NULL;
	slot = node_slot(n, i);
	bpf_rcu_read_lock();
	fb = *slot;
	if (fb)
		fb = bpf_file_acquire(fb);
	bpf_rcu_read_unlock();
	if (fb) {
		st = bpf_map_lookup_elem(&backing_stats, &key);
		if (st)
			__sync_fetch_and_add(&st->cached, 1);
		return fb;
	}
	fb = bpf_fuse_backing_get(fctx, node_backing(n, i));
	if (!fb)
		return NULL;
	extra = bpf_file_acquire(fb);
	if (extra) {
		extra = bpf_kptr_xchg(slot, extra);
		if (extra)	/* a concurrent request kept one first */
			bpf_file_release(extra);
	}
	return fb;
}

/* Calls to move one request: a regular file is short only at its end */
#define IO_MAX_CALLS		16

/*
 * Move @size bytes at @pos to or from backing file @fb, into or out of the
 * request's buffer.  Returns the bytes moved (short at the end of the file)
 * or -errno.
 */
static __always_inline int file_io(struct fuse_bpf_ctx *fctx,
				   struct bpf_file *fb, bool write,
				   __u64 pos, __u32 size)
{
	__u32 done = 0;
	int c, ret = 0;

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
	return ret < 0 ? ret : done;
}

/*
 * Move the request's @size bytes at @pos to or from the backing file at
 * index @i of @n.  Returns the bytes moved (short at the end of the file)
 * or -errno.  Inlined: six arguments are one more than a BPF call takes.
 */
static __always_inline int backing_io(struct fuse_bpf_ctx *fctx,
				      struct policy_node *n, __s64 i,
				      bool write, __u64 pos, __u32 size)
{
	struct bpf_file *fb;
	int ret;

	fb = backing_get(fctx, n, i);
	if (!fb)
		return -EIO;	/* id closed behind our back */
	ret = file_io(fctx, fb, write, pos, size);
	bpf_file_release(fb);
	return ret;
}

/*
 * WRITE of the request to every backing file of @n; the reply is what all of
 * them took.  An error from one is returned after the others were written,
 * so the healthy copies stay identical.  @skip_missing: an index without an
 * id holds no copy (spread); else it is a copy that failed (replicas).
 */
static __always_inline int write_copies(struct fuse_bpf_ctx *fctx,
					struct fuse_args *args,
					struct policy_node *n, bool skip_missing)
{
	const struct fuse_write_in *in = bpf_fuse_in(args, 0, struct fuse_write_in);
	struct fuse_write_out *out = bpf_fuse_out(args, 0, struct fuse_write_out);
	__u32 written;
	int i, ret, err = 0;

	if (!in || !out)
		return FUSE_BPF_UPCALL;
	written = in->size;
	for (i = 0; i < FUSE_KFUNC_MAX_BACKINGS && i < policy_backings; i++) {
		if (skip_missing && !node_backing(n, i))
			continue;
		ret = backing_io(fctx, n, i, true, in->offset, in->size);
		count_io(i, true, ret);
		if (ret < 0) {
			if (!err)
				err = ret;
			continue;
		}
		if (ret < written)
			written = ret;
	}
	if (err)
		return err;
	out->size = written;
	return 0;
}

/* GETATTR from the backing file at index @i of @n */
static __always_inline int serve_getattr(struct fuse_bpf_ctx *fctx,
					 struct fuse_args *args,
					 struct policy_node *n, __s64 i)
{
	struct fuse_attr_out *out = bpf_fuse_out(args, 0, struct fuse_attr_out);
	struct bpf_file *fb;
	int ret;

	if (!out)
		return FUSE_BPF_UPCALL;
	fb = backing_get(fctx, n, i);
	if (!fb)
		return -EIO;	/* id closed behind our back */
	ret = fuse_reply_attr(fctx, fb, &out->attr);
	bpf_file_release(fb);
	if (ret < 0)
		return ret;
	out->attr_valid = policy_attr_timeout;
	out->attr_valid_nsec = 0;
	return 0;
}

#endif /* __FUSE_KFUNC_POLICY_BPF_H */
