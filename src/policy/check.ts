// `fuse-kfunc policy check FILE`: a policy module end to end, step by step, each step
// reported with what it found: compiled (errors at TypeScript lines), the BPF object
// (clang-19), the verifier of the running kernel when it has the hook, and last its C against
// its TypeScript on random inputs (natively). A step that cannot run here says why and how;
// a failed step ends the check.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildPolicy, compiledModule } from './build.ts';
import { nativeCheck } from './compiler/native.ts';
import { paramValue } from './lang/params.ts';
import { cachePaths } from '../util/paths.ts';
import { BpfObjectSpec } from '../bpf/object.ts';
import { VerifierError, tsLines } from '../bpf/errors.ts';

export interface CheckStep {
  step: 'compile' | 'native' | 'bpf' | 'verifier';
  /** true: passed; false: failed; null: could not run here (`detail` says why). */
  ok: boolean | null;
  detail: string;
}

export interface CheckReport {
  file: string;
  ok: boolean;
  steps: CheckStep[];
}

/**
 * The running kernel has fuse-kfunc's hook: the BTF of fuse (a module in the project's
 * config, loaded here if it is not yet) or of vmlinux knows struct fuse_bpf_ops.
 */
export function kernelHasHook(): boolean {
  if (!existsSync('/sys/module/fuse')) spawnSync('modprobe', ['-q', 'fuse'], { stdio: 'ignore' });
  return ['/sys/kernel/btf/fuse', '/sys/kernel/btf/vmlinux'].some((f) => {
    try {
      return readFileSync(f).includes('fuse_bpf_ops');
    } catch {
      return false;
    }
  });
}

export function checkPolicy(file: string, buildDir = process.env.FUSE_KFUNC_BUILD ?? join(cachePaths().builds, 'current')): CheckReport {
  const steps: CheckStep[] = [];
  const done = (): CheckReport => ({ file, ok: steps.every((s) => s.ok !== false), steps });
  let c;
  try {
    c = compiledModule(file);
  } catch (e) {
    steps.push({ step: 'compile', ok: false, detail: (e as Error).message });
    return done();
  }
  const d = c.definition;
  // Last: it runs the functions many times, which a program the verifier refused may not survive.
  const native = (): CheckReport => {
    const defaults = Object.fromEntries(Object.entries(d.params).map(([k, p]) => [k, paramValue(k, p, undefined)]));
    const contexts = [];
    for (let b = d.backings.min; b <= d.backings.max; b++) contexts.push({ ...defaults, backings: b });
    const n = nativeCheck(c, contexts);
    const first = n.mismatches[0];
    steps.push({
      step: 'native', ok: n.mismatches.length === 0,
      detail: first
        ? `${n.mismatches.length} of ${n.calls} calls differ between the C and the TypeScript; first: ${first.call} with ${JSON.stringify(first.context)}: C ${first.c}, TypeScript ${first.ts} (a quotient or remainder of a negative number, or a value past 2^53?)`
        : `C and TypeScript agree on ${n.calls} random calls (default parameters, ${d.backings.min}..${d.backings.max} backings)`,
    });
    return done();
  };
  steps.push({ step: 'compile', ok: true, detail: `${d.name}: a ${c.family} policy over ${d.backings.min}..${d.backings.max} backings, parameters ${Object.keys(d.params).join(', ') || '(none)'}` });

  if (!existsSync(join(buildDir, 'vmlinux.h'))) {
    steps.push({ step: 'bpf', ok: null, detail: `no kernel build at ${buildDir}: run \`fuse-kfunc kernel build\`` });
    return native();
  }
  const policy = { module: file, params: {}, backings: d.backings.min, attrTimeout: 1 };
  let built;
  try {
    built = buildPolicy(policy, buildDir);
    steps.push({ step: 'bpf', ok: true, detail: `${built.object} (struct_ops ${built.structOps})` });
  } catch (e) {
    steps.push({ step: 'bpf', ok: false, detail: (e as Error).message });
    return done();
  }

  if (!kernelHasHook()) {
    steps.push({ step: 'verifier', ok: null, detail: 'the running kernel has no fuse_bpf_ops hook: run the check in the VM, `fuse-kfunc vm run -- fuse-kfunc policy check FILE`' });
    return native();
  }
  const spec = BpfObjectSpec.open(built.object);
  try {
    for (const [k, v] of Object.entries(built.globals)) spec.setGlobal(k, v);
    spec.load().close();
    steps.push({ step: 'verifier', ok: true, detail: `loaded: the verifier accepted ${built.structOps} with ${d.backings.min} backings` });
  } catch (e) {
    const where = e instanceof VerifierError ? tsLines(e.log) : [];
    steps.push({ step: 'verifier', ok: false, detail: `${(e as Error).message}${where.length ? `\n  at ${where.join(', ')} (the last TypeScript lines the verifier walked)` : ''}` });
  } finally {
    spec.close();
  }
  return steps[steps.length - 1]!.ok === false ? done() : native();
}

export function formatCheck(r: CheckReport): string {
  const mark = (ok: boolean | null) => (ok === true ? 'ok  ' : ok === false ? 'FAIL' : 'skip');
  return `${r.steps.map((s) => `${mark(s.ok)} ${s.step.padEnd(8)} ${s.detail.replace(/\n/g, '\n              ')}`).join('\n')}\n${r.ok ? 'policy check: ok' : 'policy check: FAILED'} (${r.file})\n`;
}
