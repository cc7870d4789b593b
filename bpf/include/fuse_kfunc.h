/* SPDX-License-Identifier: GPL-2.0 */
/*
 * fuse_kfunc.h - what a BPF program implementing struct fuse_bpf_ops needs
 * beyond vmlinux.h.
 *
 * Include it after vmlinux.h (which provides struct fuse_bpf_ctx,
 * struct fuse_args, struct bpf_file and the FUSE wire structs).  The
 * kfuncs are declared here because pahole 1.24 does not emit kfunc
 * prototypes into vmlinux.h; the declarations must match the kernel's
 * (fs/fuse/bpf.c), libbpf checks them against the kernel BTF at load time.
 */
#ifndef __FUSE_KFUNC_H
#define __FUSE_KFUNC_H

/*
 * ->request() returns either a result in (-MAX_ERRNO_FUSE, 0], meaning the
 * request was served with that result, or FUSE_BPF_UPCALL to send it to
 * the daemon unchanged.  Falling back is not -ENOSYS on purpose: the FUSE
 * core remembers -ENOSYS as "this opcode is not implemented", for every
 * node.  Only the daemon speaks for all of them, so on the daemon's nodes a
 * program's -ENOSYS asks the daemon, like FUSE_BPF_UPCALL; on the program's
 * own nodes (FUSE_BPF_CTX_OWN_NODE) it stands and switches the opcode off.
 */
#define FUSE_BPF_MAX_ERRNO	512

/*
 * FUSE_BPF_UPCALL (enum fuse_bpf_ret), the struct fuse_bpf_ctx::flags
 * FUSE_BPF_CTX_BACKGROUND (the program runs on the fuse_bpf workqueue) and
 * FUSE_BPF_CTX_OWN_NODE (ctx->nodeid is one of the program's own nodes, see
 * FUSE_BPF_NODEID; FORGETs of them always carry it), and FUSE_BPF_NODEID
 * (enum fuse_bpf_nodeid) are enums of the kernel: they come with vmlinux.h.
 */

/* FUSE opcodes (include/uapi/linux/fuse.h; enums are not always in BTF) */
#define FUSE_OP_LOOKUP		1
#define FUSE_OP_FORGET		2
#define FUSE_OP_GETATTR		3
#define FUSE_OP_SETATTR		4
#define FUSE_OP_READLINK	5
#define FUSE_OP_SYMLINK		6
#define FUSE_OP_MKNOD		8
#define FUSE_OP_MKDIR		9
#define FUSE_OP_UNLINK		10
#define FUSE_OP_RMDIR		11
#define FUSE_OP_RENAME		12
#define FUSE_OP_LINK		13
#define FUSE_OP_OPEN		14
#define FUSE_OP_READ		15
#define FUSE_OP_WRITE		16
#define FUSE_OP_STATFS		17
#define FUSE_OP_RELEASE		18
#define FUSE_OP_FSYNC		20
#define FUSE_OP_SETXATTR	21
#define FUSE_OP_GETXATTR	22
#define FUSE_OP_LISTXATTR	23
#define FUSE_OP_REMOVEXATTR	24
#define FUSE_OP_FLUSH		25
#define FUSE_OP_OPENDIR		27
#define FUSE_OP_READDIR		28
#define FUSE_OP_RELEASEDIR	29
#define FUSE_OP_FSYNCDIR	30
#define FUSE_OP_ACCESS		34
#define FUSE_OP_CREATE		35
#define FUSE_OP_IOCTL		39
#define FUSE_OP_POLL		40
#define FUSE_OP_FALLOCATE	43
#define FUSE_OP_READDIRPLUS	44
#define FUSE_OP_RENAME2		45
#define FUSE_OP_LSEEK		46
#define FUSE_OP_COPY_FILE_RANGE	47
#define FUSE_OP_TMPFILE		51
#define FUSE_OP_STATX		52
#define FUSE_OP_MAX		64	/* opcodes below this fit a counter array */

/* ---- Request arguments ------------------------------------------------ */

/*
 * In/out argument @idx as memory of exactly @size bytes (a constant the
 * verifier uses as the region's size).  NULL if the argument has another
 * size or lives in pages (READ/WRITE data).  The return type is a byte
 * pointer rather than void *: 6.12's verifier treats a returned void * as
 * a scalar.
 */
extern const __u8 *bpf_fuse_in_arg(struct fuse_args *args, __u32 idx,
				   const size_t rdonly_buf_size) __ksym;
extern __u8 *bpf_fuse_out_arg(struct fuse_args *args, __u32 idx,
			      const size_t rdwr_buf_size) __ksym;

/* Typed accessors: NULL unless the argument is exactly a @type */
#define bpf_fuse_in(args, idx, type) \
	((const type *)bpf_fuse_in_arg(args, idx, sizeof(type)))
#define bpf_fuse_out(args, idx, type) \
	((type *)bpf_fuse_out_arg(args, idx, sizeof(type)))

/* Copy a variable sized in argument (a name); its size or -E2BIG */
extern int bpf_fuse_in_arg_copy(struct fuse_args *args, __u32 idx,
				void *buf, __u32 buf__sz) __ksym;
/* Fill a variable sized reply held in memory, at byte @off */
extern int bpf_fuse_out_arg_copy(struct fuse_bpf_ctx *ctx, __u32 off,
				 const void *buf, __u32 buf__sz) __ksym;
/* Size of a variable sized reply; only shrinks a reply in pages */
extern int bpf_fuse_set_out_size(struct fuse_bpf_ctx *ctx, __u32 size) __ksym;

/* ---- Backing files ---------------------------------------------------- */

/*
 * Programs hold files as struct bpf_file (the kernel's fs/bpf_vfs_kfuncs.c):
 * a backing file the daemon registered with FUSE_DEV_IOC_BACKING_OPEN, by
 * id, on the request's connection, or what bpf_vfs_lookup() and friends
 * return.  The reference is tracked by the verifier: release it, or move it
 * into a map as a struct bpf_file __kptr * with bpf_kptr_xchg().
 */
extern struct bpf_file *bpf_fuse_backing_get(struct fuse_bpf_ctx *ctx,
					     __u32 backing_id) __ksym;
extern void bpf_file_release(struct bpf_file *bf) __ksym;

/*
 * Another reference to @bf: one the program holds, or one loaded from a map
 * value inside bpf_rcu_read_lock() (struct bpf_file is freed after an RCU
 * grace period), so concurrent requests can share a cached backing file
 * without moving it out of the map.  NULL if it is being freed.
 */
extern struct bpf_file *bpf_file_acquire(struct bpf_file *bf) __ksym;
extern void bpf_rcu_read_lock(void) __ksym;
extern void bpf_rcu_read_unlock(void) __ksym;

/* ---- Generic VFS kfuncs: fs/bpf_vfs_kfuncs.c (sleepable programs only) -- */

/*
 * They take &ctx->vfs (struct bpf_vfs_ctx, the first member of the request's
 * context) and a struct bpf_file, or its &bf->path where a path will do.  A
 * file is used only where this connection would have accepted it from
 * FUSE_DEV_IOC_BACKING_OPEN (-ELOOP otherwise), wherever it came from:
 * programs of two connections sharing a map could otherwise make a mount
 * wait on itself.  The FUSE kfuncs below take the request itself.
 */
extern int bpf_vfs_fsync(struct bpf_vfs_ctx *v, struct bpf_file *bf,
			 int datasync) __ksym;
extern int bpf_vfs_fallocate(struct bpf_vfs_ctx *v, struct bpf_file *bf,
			     int mode, __u64 offset, __u64 len) __ksym;
extern __s64 bpf_vfs_llseek(struct bpf_vfs_ctx *v, struct bpf_file *bf,
			    __s64 offset, int whence) __ksym;
/* As on close, for backing filesystems that write back on flush */
extern int bpf_vfs_flush(struct bpf_vfs_ctx *v, struct bpf_file *bf) __ksym;
extern int bpf_vfs_truncate(struct bpf_vfs_ctx *v, const struct path *path,
			    __u64 size) __ksym;

/* ---- VFS on backing files, serving requests (sleepable programs only) -- */

/*
 * Data moves between the backing file and the request's pages inside the
 * kernel; BPF only names offsets.  Both return bytes moved or -errno, and
 * may be called several times to fill one request.
 */
extern int bpf_vfs_read(struct fuse_bpf_ctx *ctx, struct bpf_file *fb,
			__u64 pos, __u32 out_off, __u32 len) __ksym;
extern int bpf_vfs_write(struct fuse_bpf_ctx *ctx, struct bpf_file *fb,
			 __u64 pos, __u32 in_off, __u32 len) __ksym;

/* Fills a struct fuse_attr (@attr__sz = sizeof(struct fuse_attr)) */
extern int bpf_vfs_getattr(struct fuse_bpf_ctx *ctx, struct bpf_file *fb,
			   void *attr, __u32 attr__sz) __ksym;
/*
 * Apply the request's SETATTR (size, mode, owner, times, kill suid/sgid)
 * as the caller, with the checks chmod(2), chown(2), truncate(2) and
 * utimensat(2) make.  Fill the reply with bpf_vfs_getattr() afterwards.
 */
extern int bpf_vfs_setattr(struct fuse_bpf_ctx *ctx,
			   struct bpf_file *fb) __ksym;
/* Fills a struct fuse_kstatfs */
extern int bpf_vfs_statfs(struct fuse_bpf_ctx *ctx, struct bpf_file *fb,
			  void *st, __u32 st__sz) __ksym;
/*
 * Serve the request, a GETXATTR or LISTXATTR, from @fb: the value (or
 * list) if the caller passed a buffer, else its size; -ENODATA, -ERANGE.
 * Every write is preceded by a GETXATTR of security.capability (FUSE
 * clears SB_NOSEC): a program serving WRITE should serve it too.
 */
extern int bpf_vfs_getxattr(struct fuse_bpf_ctx *ctx,
			    struct bpf_file *fb) __ksym;
extern int bpf_vfs_listxattr(struct fuse_bpf_ctx *ctx,
			     struct bpf_file *fb) __ksym;

/* ---- Namespace: backing directories ------------------------------------ */

/*
 * Directories registered with FUSE_DEV_IOC_BACKING_OPEN and FUSE_BACKING_DIR.
 * bpf_vfs_readdir() fills a READDIR or READDIRPLUS reply from @dir starting
 * at @pos: bytes filled, 0 at the end (READDIRPLUS entries carry no node id).
 * To open an entry of @dir, bpf_vfs_lookup() then bpf_vfs_open() (below).
 */
extern int bpf_vfs_readdir(struct fuse_bpf_ctx *ctx, struct bpf_file *dir,
			   __u64 pos) __ksym;

/* ---- Namespace: a tree served without the daemon ------------------------ */

/*
 * Node ids a program hands out carry this bit: it answers LOOKUP (CREATE,
 * MKNOD, MKDIR, SYMLINK, LINK, READDIRPLUS) with them, keeps what it needs
 * per node, and receives their FORGET as a FUSE_FORGET request (struct
 * fuse_forget_in, from a worker, return value ignored).  The daemon never
 * sees them.  The daemon may use the bit too (tagged pointers), so the
 * kernel records per node whose it is: test FUSE_BPF_CTX_OWN_NODE, not the
 * bit.  An id the other side's live node holds is refused (-EIO).
 * FUSE_BPF_NODEID is 1 << 63 (vmlinux.h).
 */

/*
 * Names are one path component, NUL terminated within name__sz: not empty,
 * not "." or "..", no '/'.  Lookups follow no final symlink and enter no
 * mount (-EXDEV), so nothing outside the backing directories is reachable.
 * Every kfunc acts as the caller (the process that made the request; a
 * background request as the attacher without any capability): the backing
 * files' own permissions apply to it, and what it creates is its own.
 *
 * bpf_vfs_lookup(), bpf_vfs_open(), bpf_vfs_mkdir(), bpf_vfs_link(),
 * bpf_vfs_unlink() and bpf_vfs_rmdir() are the generic kfuncs (&ctx->vfs,
 * paths); the others serve the request they are given.
 *
 * bpf_vfs_lookup(): the entry as an O_PATH node (getattr, setattr, xattrs,
 * readlink, further lookups, bpf_vfs_open()).  bpf_vfs_fill_entry(): the
 * request's fuse_entry_out from a node (nodeid, generation, attributes).
 * bpf_vfs_open(): a node opened for I/O (O_ACCMODE, O_TRUNC, O_DIRECTORY;
 * regular files and directories only).  bpf_vfs_create(), bpf_vfs_mknod(),
 * bpf_vfs_symlink(): serve CREATE, MKNOD, SYMLINK; what the request says
 * (mode, flags, device, link contents) comes from the request, the name
 * from the program.
 */
extern struct bpf_file *bpf_vfs_lookup(struct bpf_vfs_ctx *v,
				       const struct path *dir,
				       const char *name, __u32 name__sz,
				       int *err) __ksym;
extern int bpf_vfs_fill_entry(struct fuse_bpf_ctx *ctx,
			      struct bpf_file *fb, __u64 nodeid) __ksym;
extern struct bpf_file *bpf_vfs_open(struct bpf_vfs_ctx *v,
				     const struct path *path,
				     __u32 flags, int *err) __ksym;
extern struct bpf_file *bpf_vfs_create(struct fuse_bpf_ctx *ctx,
					   struct bpf_file *dir,
					   const char *name, __u32 name__sz,
					   int *err) __ksym;
extern int bpf_vfs_mkdir(struct bpf_vfs_ctx *v, const struct path *dir,
			 const char *name, __u32 name__sz, __u32 mode) __ksym;
extern int bpf_vfs_mknod(struct fuse_bpf_ctx *ctx, struct bpf_file *dir,
			 const char *name, __u32 name__sz) __ksym;
extern int bpf_vfs_symlink(struct fuse_bpf_ctx *ctx, struct bpf_file *dir,
			   const char *name, __u32 name__sz) __ksym;
extern int bpf_vfs_link(struct bpf_vfs_ctx *v, const struct path *old,
			const struct path *dir, const char *name,
			__u32 name__sz) __ksym;
extern int bpf_vfs_unlink(struct bpf_vfs_ctx *v, const struct path *dir,
			  const char *name, __u32 name__sz) __ksym;
extern int bpf_vfs_rmdir(struct bpf_vfs_ctx *v, const struct path *dir,
			 const char *name, __u32 name__sz) __ksym;
/*
 * @names: "old\0new\0"; the flags are RENAME2's (NOREPLACE, EXCHANGE,
 * WHITEOUT), none for RENAME or another request; -EXDEV across mounts
 */
extern int bpf_vfs_rename(struct fuse_bpf_ctx *ctx, struct bpf_file *olddir,
			  struct bpf_file *newdir, const char *names,
			  __u32 names__sz) __ksym;
extern int bpf_vfs_readlink(struct fuse_bpf_ctx *ctx,
			    struct bpf_file *node) __ksym;
extern int bpf_vfs_setxattr(struct fuse_bpf_ctx *ctx,
			    struct bpf_file *fb) __ksym;
extern int bpf_vfs_removexattr(struct fuse_bpf_ctx *ctx,
			       struct bpf_file *fb) __ksym;

/*
 * Building a listing entry by entry: merge directories, hide entries.  The
 * entry from _next() is valid until the next call; bpf_fuse_dir_emit()
 * appends it to a READDIR(PLUS) reply with the offset to continue from
 * (-ENOSPC: the reply is full).
 */
/* Declared here too, so that programs not using them build against older kernels */
struct bpf_iter_fuse_dir;
struct fuse_bpf_dirent;

extern int bpf_iter_fuse_dir_new(struct bpf_iter_fuse_dir *it,
				 struct fuse_bpf_ctx *ctx,
				 struct bpf_file *dir, __u64 pos) __ksym;
extern struct fuse_bpf_dirent *
bpf_iter_fuse_dir_next(struct bpf_iter_fuse_dir *it) __ksym;
extern void bpf_iter_fuse_dir_destroy(struct bpf_iter_fuse_dir *it) __ksym;
extern int bpf_fuse_dir_emit(struct fuse_bpf_ctx *ctx,
			     struct bpf_iter_fuse_dir *it__iter,
			     __u64 off) __ksym;

#endif /* __FUSE_KFUNC_H */
