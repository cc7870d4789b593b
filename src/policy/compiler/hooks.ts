// The decision functions the compiler knows, per family: their C names and signatures. The
// kernel-side runtime of a family (bpf/runtime/<family>.bpf.h) declares the same
// prototypes; the userspace runtime (src/policy/runtime/) calls the TypeScript functions.

export type HookReturn = 'scalar' | 'segment';

export interface HookSignature {
  /** The C function the runtime calls. */
  c: string;
  /** Names of the leading arguments (integers unless in `strings`); the policy context comes last. */
  args: string[];
  /** The arguments that are strings: `const char *x, __s64 x_len` in C. */
  strings?: string[];
  /** The arguments that are operations ('read', 'write', ...): a FUSE opcode in C. */
  ops?: string[];
  /** The family's kernel runtime does not call it yet (only the daemon does): marked unused in the C. */
  daemonOnly?: boolean;
  returns: HookReturn;
  /** The struct a 'segment' hook fills, and its fields in order. */
  fields?: string[];
}

export interface Family {
  /** The runtime header the generated file includes last. */
  runtime: string;
  /** The backing directories its runtime serves, when it does not serve any 1..4. */
  backings?: { min: number; max: number; why: string };
  hooks: Record<string, HookSignature>;
}

export const FAMILIES: Record<string, Family> = {
  layout: {
    runtime: 'layout.bpf.h',
    hooks: {
      locate: { c: 'policy_locate', args: ['off'], returns: 'segment', fields: ['backing', 'offset', 'length'] },
      backingSize: { c: 'policy_backing_size', args: ['size', 'i'], returns: 'scalar' },
      logicalEnd: { c: 'policy_logical_end', args: ['size', 'i'], returns: 'scalar' },
    },
  },
  replicas: {
    runtime: 'replicas.bpf.h',
    hooks: {
      readFrom: { c: 'policy_read_from', args: ['attempt', 'turn'], returns: 'scalar' },
    },
  },
  placement: {
    runtime: 'placement.bpf.h',
    hooks: {
      // Names are the daemon's until the runtime serves them in BPF (issue 19).
      place: { c: 'policy_place', args: ['path'], strings: ['path'], returns: 'scalar', daemonOnly: true },
    },
  },
  tiers: {
    runtime: 'tiers.bpf.h',
    backings: { min: 2, max: 2, why: 'a slow tier and a fast one' },
    hooks: {
      promote: { c: 'policy_promote', args: ['size'], returns: 'scalar', daemonOnly: true },
    },
  },
  access: {
    runtime: 'access.bpf.h',
    backings: { min: 1, max: 1, why: 'one backing file per FUSE file' },
    hooks: {
      before: { c: 'policy_before', args: ['op'], ops: ['op'], returns: 'scalar' },
      after: { c: 'policy_after', args: ['op', 'result'], ops: ['op'], returns: 'scalar' },
    },
  },
  spread: {
    runtime: 'spread.bpf.h',
    hooks: {
      create: { c: 'policy_create', args: ['path', 'turn'], strings: ['path'], returns: 'scalar', daemonOnly: true },
    },
  },
  layers: {
    runtime: 'layers.bpf.h',
    hooks: {
      hidden: { c: 'policy_hidden', args: ['name'], strings: ['name'], returns: 'scalar', daemonOnly: true },
    },
  },
};
