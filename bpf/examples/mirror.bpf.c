// SPDX-License-Identifier: GPL-2.0
/*
 * mirror: every regular file is kept in up to MIRROR_MAX_REPLICAS backing
 * files, one per replica directory, all with the same bytes.
 *
 *  READ   served from one replica, chosen round-robin per request; on an
 *         error the next replica is tried, so a bad replica costs latency,
 *         not availability.
 *  WRITE  written to every replica.  The reply is the number of bytes all
 *         replicas took; an error from any replica is returned (after the
 *         others were written, so the healthy ones stay identical).
 *  GETXATTR of an open file, from replica 0, where the daemon sets
 *         attributes: the kernel asks for security.capability before
 *         every write, which would otherwise cost a daemon round trip.
 *  other  sent to the daemon (FUSE_BPF_UPCALL), which owns the namespace
 *         and keeps the replicas' names in step.
 *
 * The daemon fills the "nodes" map when a file is opened: nodeid -> the
 * backing ids it registered with FUSE_DEV_IOC_BACKING_OPEN, one per
 * replica, and deletes the entry at the last release.  Files without an
 * entry go to the daemon, which implements the same policy in userspace.
 * (fuse_kfunc_daemon.h: the maps the daemon and a program share.)
 *
 * Counters: per opcode, served here vs sent up (fuse_kfunc_stats.h); per
 * replica ("backing_stats"), reads, writes, bytes, errors and how often a
 * cached backing file reference was used.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "fuse_kfunc.h"
#include "fuse_kfunc_stats.h"
#include "fuse_kfunc_daemon.h"

char LICENSE[] SEC("license") = "GPL";

#define MIRROR_MAX_REPLICAS	FUSE_KFUNC_MAX_BACKINGS
/* Bound for the read/write loops; a request is at most max_pages (1 MiB) */
#define MIRROR_MAX_CHUNKS	16

#define EIO	5

/*
 * Value of "nodes": struct fuse_kfunc_node with the program's part named.
 * The daemon writes backing[], nr and zeroes the rest.  The program caches a reference to each
 * backing file in fb*: later requests take theirs from the cache under RCU
 * instead of looking the id up.  Replacing or deleting the entry releases
 * the cached references, so the daemon's last RELEASE closes the files.
 */
struct mirror_node {
	__u32 backing[MIRROR_MAX_REPLICAS];	/* backing ids, replica order */
	__u32 nr;				/* replicas in use, 1..4 */
	__u32 next;				/* round-robin cursor for READ */
	struct bpf_file __kptr *fb0;	/* one field per replica: the */
	struct bpf_file __kptr *fb1;	/* verifier wants kptrs at    */
	struct bpf_file __kptr *fb2;	/* constant offsets           */
	struct bpf_file __kptr *fb3;
};

FUSE_KFUNC_NODE_CHECK(struct mirror_node);

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);			/* nodeid */
	__type(value, struct mirror_node);
} nodes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MIRROR_MAX_REPLICAS);
	__type(key, __u32);			/* replica index */
	__type(value, struct fuse_kfunc_backing_stats);
} backing_stats SEC(".maps");

static struct fuse_kfunc_backing_stats *replica(__u32 idx)
{
	return bpf_map_lookup_elem(&backing_stats, &idx);
}

static __always_inline struct bpf_file __kptr **
cache_slot(struct mirror_node *n, __u32 r)
{
	switch (r) {
	case 0: return &n->fb0;
	case 1: return &n->fb1;
	case 2: return &n->fb2;
	default: return &n->fb3;
	}
}

/*
 * A reference to replica @r's backing file: from the node's cache if it
 * has one, else by id (and then cached for the next requests).  Concurrent
 * requests share the cached reference; the map keeps its own.
 */
static __always_inline struct bpf_file *
replica_get(struct fuse_bpf_ctx *fctx, struct mirror_node *n, __u32 r)
{
	struct bpf_file __kptr **slot = cache_slot(n, r);
	struct fuse_kfunc_backing_stats *st;
	struct bpf_file *fb, *extra;

	bpf_rcu_read_lock();
	fb = *slot;
	if (fb)
		fb = bpf_file_acquire(fb);
	bpf_rcu_read_unlock();
	if (fb) {
		st = replica(r);
		if (st)
			__sync_fetch_and_add(&st->cached, 1);
		return fb;
	}

	fb = bpf_fuse_backing_get(fctx, n->backing[r & (MIRROR_MAX_REPLICAS - 1)]);
	if (!fb)
		return NULL;	/* id closed behind our back: fail over */
	extra = bpf_file_acquire(fb);
	if (extra) {
		extra = bpf_kptr_xchg(slot, extra);
		if (extra)	/* another request cached one first */
			bpf_file_release(extra);
	}
	return fb;
}

/*
 * Read @size bytes at @pos of replica @r into the reply.  Returns the bytes
 * read (short at end of file) or a negative error.
 */
static __always_inline int read_replica(struct fuse_bpf_ctx *fctx,
					struct mirror_node *n, __u32 r,
					__u64 pos, __u32 size)
{
	struct bpf_file *fb;
	__u32 done = 0;
	int i, ret = 0;

	fb = replica_get(fctx, n, r);
	if (!fb)
		return -EIO;

	for (i = 0; i < MIRROR_MAX_CHUNKS && done < size; i++) {
		ret = bpf_fuse_read(fctx, fb, pos + done, done, size - done);
		if (ret <= 0)
			break;
		done += ret;
	}
	bpf_file_release(fb);
	return ret < 0 ? ret : done;
}

/* Write the request's data to replica @r: bytes written or an error */
static __always_inline int write_replica(struct fuse_bpf_ctx *fctx,
					 struct mirror_node *n, __u32 r,
					 __u64 pos, __u32 size)
{
	struct bpf_file *fb;
	__u32 done = 0;
	int i, ret = 0;

	fb = replica_get(fctx, n, r);
	if (!fb)
		return -EIO;

	for (i = 0; i < MIRROR_MAX_CHUNKS && done < size; i++) {
		ret = bpf_fuse_write(fctx, fb, pos + done, done, size - done);
		if (ret <= 0)
			break;
		done += ret;
	}
	bpf_file_release(fb);
	return ret < 0 ? ret : done;
}

static int mirror_getxattr(struct fuse_bpf_ctx *fctx, struct fuse_args *args,
			   struct mirror_node *n)
{
	struct bpf_file *fb = replica_get(fctx, n, 0);
	int ret;

	if (!fb)
		return FUSE_BPF_UPCALL;	/* the daemon reads the primary itself */
	ret = fuse_serve_getxattr(fctx, args, fb);
	bpf_file_release(fb);
	return ret;
}

static int mirror_read(struct fuse_bpf_ctx *fctx, struct fuse_args *args,
		       struct mirror_node *n)
{
	const struct fuse_read_in *in = bpf_fuse_in(args, 0, struct fuse_read_in);
	struct fuse_kfunc_backing_stats *st;
	__u32 nr = n->nr, first, r;
	int i, ret = -EIO;

	if (!in)
		return FUSE_BPF_UPCALL;	/* not the READ we know: let the daemon judge */

	/*
	 * Racy on purpose: concurrent readers may pick the same replica, which
	 * only skews the balance (an atomic fetch-add needs -mcpu=v3).
	 */
	first = n->next;
	n->next = first + 1;
	for (i = 0; i < MIRROR_MAX_REPLICAS && i < nr; i++) {
		r = (first + i) % nr;
		if (r >= MIRROR_MAX_REPLICAS)
			break;
		ret = read_replica(fctx, n, r, in->offset, in->size);
		st = replica(r);
		if (ret >= 0) {
			if (st) {
				__sync_fetch_and_add(&st->reads, 1);
				__sync_fetch_and_add(&st->read_bytes, ret);
			}
			/* A failed replica may have filled more of the reply */
			bpf_fuse_set_out_size(fctx, ret);
			return 0;
		}
		if (st)
			__sync_fetch_and_add(&st->errors, 1);
	}
	return ret;
}

static int mirror_write(struct fuse_bpf_ctx *fctx, struct fuse_args *args,
			struct mirror_node *n)
{
	const struct fuse_write_in *in = bpf_fuse_in(args, 0, struct fuse_write_in);
	struct fuse_write_out *out = bpf_fuse_out(args, 0, struct fuse_write_out);
	struct fuse_kfunc_backing_stats *st;
	__u32 nr = n->nr, written;
	int i, ret, err = 0;

	if (!in || !out)
		return FUSE_BPF_UPCALL;

	written = in->size;
	for (i = 0; i < MIRROR_MAX_REPLICAS && i < nr; i++) {
		ret = write_replica(fctx, n, i, in->offset, in->size);
		st = replica(i);
		if (ret < 0) {
			if (st)
				__sync_fetch_and_add(&st->errors, 1);
			if (!err)
				err = ret;
			continue;
		}
		if (st) {
			__sync_fetch_and_add(&st->writes, 1);
			__sync_fetch_and_add(&st->write_bytes, ret);
		}
		if (ret < written)
			written = ret;
	}
	if (err)
		return err;
	out->size = written;
	return 0;
}

SEC("struct_ops.s/request")
int BPF_PROG(mirror_request, struct fuse_bpf_ctx *fctx, struct fuse_args *args)
{
	__u32 op = fctx->opcode;
	__u64 nodeid = fctx->nodeid;
	struct mirror_node *n;
	int ret = FUSE_BPF_UPCALL;

	if (op == FUSE_OP_READ || op == FUSE_OP_WRITE || op == FUSE_OP_GETXATTR) {
		n = bpf_map_lookup_elem(&nodes, &nodeid);
		if (!n || n->nr < 1 || n->nr > MIRROR_MAX_REPLICAS)
			ret = FUSE_BPF_UPCALL;
		else if (op == FUSE_OP_READ)
			ret = mirror_read(fctx, args, n);
		else if (op == FUSE_OP_WRITE)
			ret = mirror_write(fctx, args, n);
		else
			ret = mirror_getxattr(fctx, args, n);
	}

	return FUSE_KFUNC_COUNT(fctx, ret);
}

SEC(".struct_ops.link")
struct fuse_bpf_ops mirror_ops = {
	.request = (void *)mirror_request,
	.name = "mirror",
};
