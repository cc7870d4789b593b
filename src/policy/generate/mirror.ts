// The mirror policy as BPF C: every replica holds the same bytes; READ from one (round-robin
// or the primary), failing over on error; WRITE to all. bpf/examples/mirror.bpf.c is the
// hand-written ancestor (with a kptr cache); this is the generated, parameterised form.
import type { MirrorPolicy } from '../spec.ts';
import { backingIo, backingStats, fileHeader, nodesMap, xattrHelper } from './common.ts';

export function generateMirror(spec: MirrorPolicy): string {
  const ids = Array.from({ length: spec.backings }, (_, i) => i);
  const choose = (v: string) => `${ids.slice(0, -1).map((i) => `${v} == ${i} ? id${i} : `).join('')}id${ids.length - 1}`;
  return `${fileHeader(spec, `
READ   from replica ${spec.read === 'primary' ? '0 (the primary)' : 'after replica, round-robin per request'};
       on an error the next replica is tried, so a bad replica costs
       latency, not availability.
WRITE  to every replica; the reply is what all of them took.  An error
       from any replica is returned after the others were written, so
       the healthy ones stay identical.
GETATTR of an open file from the first replica that answers.
The daemon (src/policy/mirror.ts) keeps names in step in every replica
directory, publishes an open file's backing ids in "nodes", and serves
what comes up the same way.`)}
#define MIRROR_NR		${spec.backings}
#define MIRROR_ROUND_ROBIN	${spec.read === 'round-robin' ? 1 : 0}
/* Seconds the kernel may cache the attributes GETATTR returns */
#define MIRROR_ATTR_VALID	${spec.attrTimeout}
#define EIO			5

${nodesMap()}
${backingStats()}
/* Round-robin cursor; racy on purpose: a lost update only skews the balance */
static __u32 next_replica;

${backingIo()}
/*
 * The ids are read into registers once and chosen by comparison: indexing
 * n->backing[r] would make the verifier track the cursor precisely.
 */
static int mirror_read(struct fuse_bpf_ctx *fctx, struct fuse_args *args,
		       struct fuse_kfunc_node *n)
{
	const struct fuse_read_in *in = bpf_fuse_in(args, 0, struct fuse_read_in);
${ids.map((i) => `\t__u32 id${i} = n->backing[${i}];`).join('\n')}
	__u32 first = 0, r, id;
	int i, ret = -EIO;

	if (!in)
		return FUSE_BPF_UPCALL;
${ids.map((i) => `\tbarrier_var(id${i});`).join('\n')}
	if (MIRROR_ROUND_ROBIN)
		first = next_replica++;
	for (i = 0; i < MIRROR_NR; i++) {
		r = (first + i) % MIRROR_NR;
		id = ${choose('r')};
		ret = backing_io(fctx, id, false, in->offset, in->size);
		count_io(r, false, ret);
		if (ret >= 0) {
			/* A replica that failed may have filled more of the reply */
			bpf_fuse_set_out_size(fctx, ret);
			return 0;
		}
	}
	return ret;
}

static int mirror_write(struct fuse_bpf_ctx *fctx, struct fuse_args *args,
			struct fuse_kfunc_node *n)
{
	const struct fuse_write_in *in = bpf_fuse_in(args, 0, struct fuse_write_in);
	struct fuse_write_out *out = bpf_fuse_out(args, 0, struct fuse_write_out);
	__u32 written;
	int i, ret, err = 0;

	if (!in || !out)
		return FUSE_BPF_UPCALL;
	written = in->size;
	for (i = 0; i < MIRROR_NR; i++) {
		ret = backing_io(fctx, n->backing[i], true, in->offset, in->size);
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

static int mirror_getattr(struct fuse_bpf_ctx *fctx, struct fuse_args *args,
			  struct fuse_kfunc_node *n)
{
	struct fuse_attr_out *out = bpf_fuse_out(args, 0, struct fuse_attr_out);
	struct bpf_file *fb;
	int i, ret = -EIO;

	if (!out)
		return FUSE_BPF_UPCALL;
	for (i = 0; i < MIRROR_NR; i++) {
		fb = bpf_fuse_backing_get(fctx, n->backing[i]);
		if (!fb)
			continue;
		ret = fuse_reply_attr(fctx, fb, &out->attr);
		bpf_file_release(fb);
		if (!ret) {
			out->attr_valid = MIRROR_ATTR_VALID;
			out->attr_valid_nsec = 0;
			return 0;
		}
	}
	return ret;
}

${xattrHelper()}
SEC("struct_ops.s/request")
int BPF_PROG(mirror_request, struct fuse_bpf_ctx *fctx, struct fuse_args *args)
{
	__u32 op = fctx->opcode;
	__u64 nodeid = fctx->nodeid;
	struct fuse_kfunc_node *n;
	int ret = FUSE_BPF_UPCALL;

	if (op != FUSE_OP_READ && op != FUSE_OP_WRITE && op != FUSE_OP_GETATTR &&
	    op != FUSE_OP_GETXATTR && op != FUSE_OP_LISTXATTR)
		return FUSE_KFUNC_COUNT(fctx, ret);
	n = bpf_map_lookup_elem(&nodes, &nodeid);
	if (!n || n->nr != MIRROR_NR)	/* not open: the daemon knows */
		return FUSE_KFUNC_COUNT(fctx, ret);
	if (op == FUSE_OP_READ)
		ret = mirror_read(fctx, args, n);
	else if (op == FUSE_OP_WRITE)
		ret = mirror_write(fctx, args, n);
	else if (op == FUSE_OP_GETATTR)
		ret = mirror_getattr(fctx, args, n);
	else
		ret = serve_xattr(fctx, args, n->backing[0]);
	return FUSE_KFUNC_COUNT(fctx, ret);
}

SEC(".struct_ops.link")
struct fuse_bpf_ops mirror_ops = {
	.request = (void *)mirror_request,
	.name = "mirror",
};
`;
}
