/* SPDX-License-Identifier: GPL-2.0 */
/*
 * fuse_kfunc.h - what a BPF program implementing struct fuse_bpf_ops needs
 * beyond vmlinux.h.
 *
 * Include it after vmlinux.h (which provides struct fuse_bpf_ctx,
 * struct fuse_args, struct fuse_backing and the FUSE wire structs).  The
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
 * core remembers -ENOSYS as "the daemon does not implement this opcode".
 */
#define FUSE_BPF_UPCALL		1
#define FUSE_BPF_MAX_ERRNO	512

/* struct fuse_bpf_ctx::flags: the program runs on the fuse_bpf workqueue */
#define FUSE_BPF_CTX_BACKGROUND	0x1

/* FUSE opcodes (include/uapi/linux/fuse.h; enums are not always in BTF) */
#define FUSE_OP_LOOKUP		1
#define FUSE_OP_GETATTR		3
#define FUSE_OP_SETATTR		4
#define FUSE_OP_OPEN		14
#define FUSE_OP_READ		15
#define FUSE_OP_WRITE		16
#define FUSE_OP_STATFS		17
#define FUSE_OP_RELEASE		18
#define FUSE_OP_FSYNC		20
#define FUSE_OP_GETXATTR	22
#define FUSE_OP_LISTXATTR	23
#define FUSE_OP_FLUSH		25
#define FUSE_OP_CREATE		35
#define FUSE_OP_FALLOCATE	43
#define FUSE_OP_LSEEK		46
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
 * A backing file the daemon registered with FUSE_DEV_IOC_BACKING_OPEN,
 * by id, on the request's connection.  The reference is tracked by the
 * verifier: put it, or move it into a map as a
 * struct fuse_backing __kptr * with bpf_kptr_xchg().
 */
extern struct fuse_backing *bpf_fuse_backing_get(struct fuse_bpf_ctx *ctx,
						 __u32 backing_id) __ksym;
extern void bpf_fuse_backing_put(struct fuse_backing *fb) __ksym;

/*
 * Another reference to @fb: one the program holds, or one loaded from a map
 * value inside bpf_rcu_read_lock() (backing files are freed after an RCU
 * grace period), so concurrent requests can share a cached backing file
 * without moving it out of the map.  NULL if it is being freed.
 */
extern struct fuse_backing *
bpf_fuse_backing_acquire(struct fuse_backing *fb) __ksym;
extern void bpf_rcu_read_lock(void) __ksym;
extern void bpf_rcu_read_unlock(void) __ksym;

/* ---- VFS on backing files (sleepable programs only) ------------------- */

/*
 * Data moves between the backing file and the request's pages inside the
 * kernel; BPF only names offsets.  Both return bytes moved or -errno, and
 * may be called several times to fill one request.
 */
extern int bpf_vfs_read(struct fuse_bpf_ctx *ctx, struct fuse_backing *fb,
			__u64 pos, __u32 out_off, __u32 len) __ksym;
extern int bpf_vfs_write(struct fuse_bpf_ctx *ctx, struct fuse_backing *fb,
			 __u64 pos, __u32 in_off, __u32 len) __ksym;

/* Fills a struct fuse_attr (@attr__sz = sizeof(struct fuse_attr)) */
extern int bpf_vfs_getattr(struct fuse_bpf_ctx *ctx, struct fuse_backing *fb,
			   void *attr, __u32 attr__sz) __ksym;
extern int bpf_vfs_fsync(struct fuse_backing *fb, int datasync) __ksym;
extern int bpf_vfs_fallocate(struct fuse_backing *fb, int mode,
			     __u64 offset, __u64 len) __ksym;
extern __s64 bpf_vfs_llseek(struct fuse_backing *fb, __s64 offset,
			    int whence) __ksym;
extern int bpf_vfs_truncate(struct fuse_backing *fb, __u64 size) __ksym;
/*
 * Apply the request's SETATTR (size, mode, owner, times, kill suid/sgid);
 * permission checks for the caller are the program's job.  Fill the reply
 * with bpf_vfs_getattr() afterwards.
 */
extern int bpf_vfs_setattr(struct fuse_bpf_ctx *ctx,
			   struct fuse_backing *fb) __ksym;
/* As on close, for backing filesystems that write back on flush */
extern int bpf_vfs_flush(struct fuse_backing *fb) __ksym;
/* Fills a struct fuse_kstatfs */
extern int bpf_vfs_statfs(struct fuse_backing *fb, void *st,
			  __u32 st__sz) __ksym;
/*
 * Serve the request, a GETXATTR or LISTXATTR, from @fb: the value (or
 * list) if the caller passed a buffer, else its size; -ENODATA, -ERANGE.
 * Every write is preceded by a GETXATTR of security.capability (FUSE
 * clears SB_NOSEC): a program serving WRITE should serve it too.
 */
extern int bpf_vfs_getxattr(struct fuse_bpf_ctx *ctx,
			    struct fuse_backing *fb) __ksym;
extern int bpf_vfs_listxattr(struct fuse_bpf_ctx *ctx,
			     struct fuse_backing *fb) __ksym;

/* ---- Namespace: backing directories ------------------------------------ */

/*
 * Directories registered with FUSE_DEV_IOC_BACKING_OPEN and FUSE_BACKING_DIR.
 * bpf_fuse_backing_open_at() opens one entry of @dir (no symlink following,
 * @dir's credentials; O_RDONLY/O_WRONLY/O_RDWR, optionally O_DIRECTORY) as a
 * new backing file, or returns NULL with *@err set.  bpf_vfs_readdir() fills
 * a READDIR reply from @dir starting at @pos: bytes filled, 0 at the end.
 */
extern struct fuse_backing *
bpf_fuse_backing_open_at(struct fuse_backing *dir, const char *name,
			 __u32 name__sz, __u32 flags, int *err) __ksym;
extern int bpf_vfs_readdir(struct fuse_bpf_ctx *ctx, struct fuse_backing *dir,
			   __u64 pos) __ksym;

#endif /* __FUSE_KFUNC_H */
