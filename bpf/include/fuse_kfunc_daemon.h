/* SPDX-License-Identifier: GPL-2.0 */
/*
 * fuse_kfunc_daemon.h - the maps a program shares with the fuse-kfunc daemon.
 *
 * The daemon (src/sdk/mount-serve.ts) loads the program, then looks for these
 * map names and checks their layout against src/sdk/contract.ts, the TypeScript
 * side of this header (test/unit/contract.test.ts compiles one against the
 * other).  A map with a contract name but another layout fails the mount with
 * a message saying which; a program declares only the maps it uses.
 *
 *  nodes          HASH, key __u64 nodeid, value struct fuse_kfunc_node (or a
 *                 struct of the same size that begins like it: see below).
 *                 For each open regular file, the daemon registers the file in
 *                 every backing directory (FUSE_DEV_IOC_BACKING_OPEN) and
 *                 publishes the ids here; it deletes the entry at the file's
 *                 last RELEASE.  Files without an entry are the daemon's.
 *  backing_stats  ARRAY of FUSE_KFUNC_MAX_BACKINGS struct
 *                 fuse_kfunc_backing_stats, key __u32 backing index: what the
 *                 program moved per backing directory (`fuse-kfunc stats`).
 *  roots          ARRAY, key __u32 index, value __u32 backing id: the backing
 *                 directories, registered with FUSE_BACKING_DIR, in mount
 *                 order.  A program with this map serves the tree itself.
 *  cache_timeout  ARRAY of 1, value __u32: the mount's name and attribute
 *                 cache timeout in seconds, for the replies the program fills.
 *  fuse_kfunc_stats  per-opcode counts: fuse_kfunc_stats.h.
 */
#ifndef __FUSE_KFUNC_DAEMON_H
#define __FUSE_KFUNC_DAEMON_H

/* Backing directories of one mount, at most */
#define FUSE_KFUNC_MAX_BACKINGS	4

/*
 * Value of "nodes".  The daemon writes backing[] and nr and zeroes the rest,
 * which is the program's: a program that keeps kptrs or cursors per node
 * declares its own struct with backing[] and nr at these offsets and the same
 * size (FUSE_KFUNC_NODE_CHECK), since kptr fields must be named in its BTF.
 */
struct fuse_kfunc_node {
	__u32 backing[FUSE_KFUNC_MAX_BACKINGS];	/* ids, backing directory order; 0: none */
	__u32 nr;				/* how many backing directories the mount has */
	__u32 prog32;				/* the program's */
	__u64 prog64[4];			/* the program's */
};

#define FUSE_KFUNC_NODE_SIZE	56

/* A program's own node struct keeps the daemon's part where the daemon writes it */
#define FUSE_KFUNC_NODE_CHECK(type)						\
	_Static_assert(sizeof(type) == FUSE_KFUNC_NODE_SIZE &&			\
		       __builtin_offsetof(type, backing) == 0 &&		\
		       __builtin_offsetof(type, nr) ==				\
		       __builtin_offsetof(struct fuse_kfunc_node, nr),		\
		       #type " must begin like struct fuse_kfunc_node")

/* Value of "backing_stats" */
struct fuse_kfunc_backing_stats {
	__u64 reads;
	__u64 read_bytes;
	__u64 writes;
	__u64 write_bytes;
	__u64 errors;		/* failed reads or writes on this backing */
	__u64 cached;		/* backing file taken from the program's node cache */
};

#endif /* __FUSE_KFUNC_DAEMON_H */
