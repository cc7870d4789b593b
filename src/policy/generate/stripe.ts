// The stripe policy as BPF C: constants from the policy, everything else fixed, so the
// program a kernel developer reads is the program the verifier loads.
import { MAX_REQUEST, type StripePolicy } from '../spec.ts';
import { backingStats, fileHeader, nodesMap, xattrHelper } from './common.ts';

export function generateStripe(spec: StripePolicy): string {
  // A request of MAX_REQUEST bytes at an unaligned offset touches one more chunk.
  const maxPieces = Math.ceil(MAX_REQUEST / spec.chunk) + 1;
  const ids = Array.from({ length: spec.backings });
  return `${fileHeader(spec, `
Logical byte off of a file lives in chunk c = off / STRIPE_CHUNK, on
backing c % STRIPE_NR, at byte (c / STRIPE_NR) * STRIPE_CHUNK +
off % STRIPE_CHUNK of that backing's file.  The daemon (src/policy/stripe.ts)
keeps names in step in every backing directory, opens a file's pieces at its
first OPEN and publishes their backing ids in "nodes"; this program serves
READ, WRITE and GETATTR of those files.  Everything else, and the files
without an entry, goes to the daemon, which serves them the same way.

Sizes: after every WRITE each backing is at least canonical_size() long,
so a hole inside the file is a hole of a backing file and reads as zeros;
a short piece is the end of the file.`)}
#define STRIPE_CHUNK		${spec.chunk}ULL
#define STRIPE_NR		${spec.backings}
/* A request (at most ${MAX_REQUEST >> 10} KiB) spans at most this many chunks */
#define STRIPE_MAX_PIECES	${maxPieces}
/* Seconds the kernel may cache the attributes GETATTR returns */
#define STRIPE_ATTR_VALID	${spec.attrTimeout}
#define EIO			5
#define EOPNOTSUPP		95

${nodesMap()}
${backingStats()}
/* Size of backing @i when the file is @size bytes long and fully written */
static __always_inline __u64 canonical_size(__u64 size, __u32 i)
{
	__u64 rows = size / (STRIPE_CHUNK * STRIPE_NR);
	__u64 rem = size - rows * STRIPE_CHUNK * STRIPE_NR;
	__u64 before = (__u64)i * STRIPE_CHUNK;

	rem = rem > before ? rem - before : 0;
	return rows * STRIPE_CHUNK + (rem < STRIPE_CHUNK ? rem : STRIPE_CHUNK);
}

/* The end of the file a backing file of @size bytes at index @i implies */
static __always_inline __u64 logical_end(__u64 size, __u32 i)
{
	__u64 k;

	if (!size)
		return 0;
	k = (size - 1) / STRIPE_CHUNK;
	return (k * STRIPE_NR + i) * STRIPE_CHUNK + size - k * STRIPE_CHUNK;
}

/*
 * Walk the request chunk by chunk, moving each piece between the request's
 * data and its backing file.  Returns the bytes moved (short at the end of
 * the file) or -errno.
 *
 * The backing ids are read into registers once and chosen by comparison:
 * indexing n->backing[i] would make the verifier track the chunk index,
 * and with it the request offset, precisely, and the loop would never
 * converge.  barrier_var() keeps clang from folding the choice back into
 * an indexed load.
 */
static int stripe_io(struct fuse_bpf_ctx *fctx, struct fuse_kfunc_node *n,
		     bool write, __u64 offset, __u32 size)
{
${ids.map((_, i) => `	__u32 id${i} = n->backing[${i}];`).join('\n')}
	struct bpf_file *fb;
	__u32 done = 0, len, i, id;
	__u64 off, chunk, pos;
	int p, ret;

${ids.map((_, i) => `	barrier_var(id${i});`).join('\n')}
	bpf_for(p, 0, STRIPE_MAX_PIECES) {
		if (done >= size)
			break;
		off = offset + done;
		chunk = off / STRIPE_CHUNK;
		i = chunk % STRIPE_NR;
		pos = chunk / STRIPE_NR * STRIPE_CHUNK + off % STRIPE_CHUNK;
		len = STRIPE_CHUNK - off % STRIPE_CHUNK;
		if (len > size - done)
			len = size - done;

		id = ${ids.slice(0, -1).map((_, i) => `i == ${i} ? id${i} : `).join('')}id${ids.length - 1};
		fb = bpf_fuse_backing_get(fctx, id);
		if (!fb)
			return -EIO;	/* id closed behind our back */
		if (write)
			ret = bpf_fuse_write(fctx, fb, pos, done, len);
		else
			ret = bpf_fuse_read(fctx, fb, pos, done, len);
		bpf_file_release(fb);
		count_io(i, write, ret);
		if (ret < 0)
			return ret;
		done += ret;
		if (ret < len)
			break;	/* end of the file, or the backing is full */
	}
	return done;
}

/*
 * Grow every backing to its canonical size for a file ending at @end.
 * fallocate() of the last byte, not truncate(): it never shrinks a file
 * that a concurrent WRITE has made longer in the meantime.
 */
static int extend(struct fuse_bpf_ctx *fctx, struct fuse_kfunc_node *n, __u64 end)
{
	struct fuse_attr attr = {};
	struct bpf_file *fb;
	__u64 want;
	int i, ret;

	for (i = 0; i < STRIPE_NR; i++) {
		want = canonical_size(end, i);
		if (!want)
			continue;
		fb = bpf_fuse_backing_get(fctx, n->backing[i]);
		if (!fb)
			return -EIO;
		ret = fuse_reply_attr(fctx, fb, &attr);
		if (!ret && attr.size < want) {
			ret = bpf_vfs_fallocate(&fctx->vfs, fb, 0, want - 1, 1);
			if (ret == -EOPNOTSUPP)
				ret = bpf_vfs_truncate(&fctx->vfs, &fb->path, want);
		}
		bpf_file_release(fb);
		if (ret < 0)
			return ret;
	}
	return 0;
}

static int stripe_read(struct fuse_bpf_ctx *fctx, struct fuse_args *args,
		       struct fuse_kfunc_node *n)
{
	const struct fuse_read_in *in = bpf_fuse_in(args, 0, struct fuse_read_in);
	int ret;

	if (!in)
		return FUSE_BPF_UPCALL;
	ret = stripe_io(fctx, n, false, in->offset, in->size);
	if (ret < 0)
		return ret;
	bpf_fuse_set_out_size(fctx, ret);
	return 0;
}

static int stripe_write(struct fuse_bpf_ctx *fctx, struct fuse_args *args,
			struct fuse_kfunc_node *n)
{
	const struct fuse_write_in *in = bpf_fuse_in(args, 0, struct fuse_write_in);
	struct fuse_write_out *out = bpf_fuse_out(args, 0, struct fuse_write_out);
	int done, ret;

	if (!in || !out)
		return FUSE_BPF_UPCALL;
	done = stripe_io(fctx, n, true, in->offset, in->size);
	if (done < 0)
		return done;
	ret = extend(fctx, n, in->offset + done);
	if (ret < 0)
		return ret;
	out->size = done;
	return 0;
}

/* Backing 0's attributes with the file's size and every piece's blocks */
static int stripe_getattr(struct fuse_bpf_ctx *fctx, struct fuse_args *args,
			  struct fuse_kfunc_node *n)
{
	struct fuse_attr_out *out = bpf_fuse_out(args, 0, struct fuse_attr_out);
	struct fuse_attr piece = {};
	struct bpf_file *fb;
	__u64 size = 0, blocks = 0, end;
	int i, ret;

	if (!out)
		return FUSE_BPF_UPCALL;
	for (i = 0; i < STRIPE_NR; i++) {
		fb = bpf_fuse_backing_get(fctx, n->backing[i]);
		if (!fb)
			return -EIO;
		ret = fuse_reply_attr(fctx, fb, &piece);
		bpf_file_release(fb);
		if (ret < 0)
			return ret;
		if (i == 0)
			out->attr = piece;
		end = logical_end(piece.size, i);
		if (end > size)
			size = end;
		blocks += piece.blocks;
	}
	out->attr.size = size;
	out->attr.blocks = blocks;
	out->attr_valid = STRIPE_ATTR_VALID;
	out->attr_valid_nsec = 0;
	return 0;
}

${xattrHelper()}
SEC("struct_ops.s/request")
int BPF_PROG(stripe_request, struct fuse_bpf_ctx *fctx, struct fuse_args *args)
{
	__u32 op = fctx->opcode;
	__u64 nodeid = fctx->nodeid;
	struct fuse_kfunc_node *n;
	int ret = FUSE_BPF_UPCALL;

	if (op != FUSE_OP_READ && op != FUSE_OP_WRITE && op != FUSE_OP_GETATTR &&
	    op != FUSE_OP_GETXATTR && op != FUSE_OP_LISTXATTR)
		return FUSE_KFUNC_COUNT(fctx, ret);
	n = bpf_map_lookup_elem(&nodes, &nodeid);
	if (!n || n->nr != STRIPE_NR)	/* not open: the daemon knows */
		return FUSE_KFUNC_COUNT(fctx, ret);
	if (op == FUSE_OP_READ)
		ret = stripe_read(fctx, args, n);
	else if (op == FUSE_OP_WRITE)
		ret = stripe_write(fctx, args, n);
	else if (op == FUSE_OP_GETATTR)
		ret = stripe_getattr(fctx, args, n);
	else
		ret = serve_xattr(fctx, args, n->backing[0]);
	return FUSE_KFUNC_COUNT(fctx, ret);
}

SEC(".struct_ops.link")
struct fuse_bpf_ops stripe_ops = {
	.request = (void *)stripe_request,
	.name = "stripe",
};
`;
}
