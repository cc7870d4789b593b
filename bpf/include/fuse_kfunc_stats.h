/* SPDX-License-Identifier: GPL-2.0 */
/*
 * fuse_kfunc_stats.h - per-opcode counters the fuse-kfunc SDK reads.
 *
 * Include it after fuse_kfunc.h and call FUSE_KFUNC_COUNT(ctx, ret) once
 * per request, with the value the program is about to return:
 *
 *	SEC("struct_ops.s/request")
 *	int BPF_PROG(my_request, struct fuse_bpf_ctx *ctx, struct fuse_args *args)
 *	{
 *		int ret = ...;
 *		return FUSE_KFUNC_COUNT(ctx, ret);
 *	}
 *
 * The SDK (src/sdk/mount.ts, `fuse-kfunc stats`) finds the map by its name,
 * "fuse_kfunc_stats", and reports per opcode how many requests the program
 * served in the kernel and how many it sent up.  The layout is fixed:
 * an ARRAY of FUSE_OP_MAX entries, key __u32 opcode, value two __u64
 * (served, upcalled).  A program without this map gets "unknown" kernel
 * counts: the daemon cannot see requests that never reached it.
 */
#ifndef __FUSE_KFUNC_STATS_H
#define __FUSE_KFUNC_STATS_H

struct fuse_kfunc_op_stats {
	__u64 served;		/* answered by the program */
	__u64 upcalled;		/* returned FUSE_BPF_UPCALL */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FUSE_OP_MAX);
	__type(key, __u32);
	__type(value, struct fuse_kfunc_op_stats);
} fuse_kfunc_stats SEC(".maps");

static __always_inline int fuse_kfunc_count(struct fuse_bpf_ctx *ctx, int ret)
{
	__u32 op = ctx->opcode;
	struct fuse_kfunc_op_stats *s = bpf_map_lookup_elem(&fuse_kfunc_stats, &op);

	if (s) {
		if (ret == FUSE_BPF_UPCALL)
			__sync_fetch_and_add(&s->upcalled, 1);
		else
			__sync_fetch_and_add(&s->served, 1);
	}
	return ret;
}

/* Counts the request and evaluates to @ret */
#define FUSE_KFUNC_COUNT(ctx, ret) fuse_kfunc_count(ctx, ret)

#endif /* __FUSE_KFUNC_STATS_H */
