// `fuse-kfunc mount` and `fuse-kfunc stats`.
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { realpathSync } from 'node:fs';
import { mount, MountError } from './mount.ts';
import { builtinPolicies, makePolicy, PolicyError } from '../policy/spec.ts';
import { isPolicyFile, parseMountArgs, parseStatsArgs } from './args.ts';
import { paramsFromFlags } from '../policy/lang/params.ts';
import { STATS_DIR, formatPerBacking, formatStats, statsFileName, type StatsFile } from './stats.ts';

export const mountHelp = (): string => `Usage: fuse-kfunc mount BACKING... MOUNTPOINT [--program OBJ|SRC] [--struct-ops NAME]
                        [--set NAME=VALUE]... [--policy NAME [PARAMS] [--names kernel]] [--userspace]
                        [--passthrough] [--timeout SEC]

Mounts BACKING on MOUNTPOINT with the TypeScript FUSE daemon (in a child process) and stays
in the foreground until SIGINT/SIGTERM or until someone unmounts MOUNTPOINT. Needs root.

Modes:
  (default), --userspace  every request goes to the daemon
  --passthrough           upstream FUSE passthrough: READ/WRITE of open files are done by
                          the kernel on the backing file (FOPEN_PASSTHROUGH)
  --program FILE          load FILE (.bpf.o, or .bpf.c compiled with clang-19 against the
                          running kernel) and attach its struct fuse_bpf_ops to this mount;
                          with a "nodes" map the daemon publishes each open file's backing
                          id there (see bpf/examples/passthrough.bpf.c); with a "roots" map
                          it registers the backing directory itself there, and the program
                          serves the whole tree, names included, with its own node ids
                          (see bpf/examples/tree.bpf.c; a "cache_timeout" map gets --timeout)
  --struct-ops NAME       the struct_ops map to attach when FILE has several
  --set NAME=VALUE        set FILE's global variable NAME (a const volatile knob) to the
                          integer VALUE before loading it, e.g. --set passthrough=1 for
                          tree.bpf.c (open files passed through to their backing files)
  --policy NAME|FILE      a built-in policy over the BACKING directories, or a policy module
                          (a .ts file with definePolicy(), docs/policies.md; its parameters
                          as --name VALUE): its BPF C is generated, compiled (cached) and
                          attached, and the daemon serves the rest the same way; with
                          --userspace the daemon alone (the policy's userspace reference).
  --names kernel|daemon   who serves the policy's names (lookup, create, mkdir, rename,
                          readdir ...): the daemon (default; the program serves open
                          files), or the program too, so that no request reaches the
                          daemon after INIT (the layout and replicas families: stripe, mirror)
                          \`fuse-kfunc policy --help\` lists the built-in ones:
${builtinPolicies().map((p) => `                            ${p.name}: ${p.params.map((q) => `--${q.name} ${q.value} (default ${q.default})`).join(', ')}`).join('\n')}
Several BACKING directories without --policy are kept identical (the mirror daemon).

Options:
  --timeout SEC           kernel name/attribute cache timeout (default 1)

Stats (per opcode: served in the kernel by the program, received by the daemon) are
written every second to ${STATS_DIR}/<mountpoint>.json: read them with
\`fuse-kfunc stats MOUNTPOINT\`. Kernel counts need the program to use FUSE_KFUNC_COUNT
(bpf/include/fuse_kfunc_stats.h); otherwise they show as "unknown".`;

export const STATS_HELP = `Usage: fuse-kfunc stats MOUNTPOINT [--json]

Prints the per-opcode counters of a running \`fuse-kfunc mount\` on MOUNTPOINT:
  kernel   requests the BPF program served in the kernel (0 without a program,
           "unknown" when the program does not count with FUSE_KFUNC_COUNT)
  daemon   requests the daemon received (including the program's upcalls)
Read from ${STATS_DIR}/<mountpoint>.json, which the mount process rewrites every second.
--json prints that file.`;

export function statsPath(mountpoint: string): string {
  return join(STATS_DIR, statsFileName(mountpoint));
}

export async function mountCmd(argv: string[]): Promise<number> {
  const a = parseMountArgs(argv);
  if (a.help) { process.stdout.write(mountHelp() + '\n'); return 0; }
  let h;
  try {
    // --policy FILE: a policy module, its --kebab-case parameters as the module's camelCase ones.
    const file = a.policy !== undefined && isPolicyFile(a.policy);
    const { 'attr-timeout': attr, ...rest } = a.policyParams;
    const params = paramsFromFlags(rest);
    if (file && attr !== undefined && !/^\d+$/.test(attr)) throw new PolicyError(`--attr-timeout: "${attr}" is not a whole number of seconds`);
    const policy = a.policy === undefined ? undefined : file ? a.policy : makePolicy(a.policy, a.policyParams, a.backings.length);
    h = await mount({
      backings: a.backings, mountpoint: a.mountpoint, program: a.program, structOps: a.structOps, globals: a.globals, policy,
      ...(file ? { params, attrTimeout: attr === undefined ? undefined : Number(attr) } : {}),
      userspace: a.userspace, passthrough: a.passthrough, timeout: a.timeout, names: a.names, echo: true,
    });
  } catch (e) {
    if (e instanceof PolicyError) {
      process.stderr.write(`fuse-kfunc mount: ${e.message}\n`);
      return 1;
    }
    if (e instanceof MountError) {
      process.stderr.write(`fuse-kfunc mount: ${e.message}\n`);
      if (e.log) process.stderr.write(`--- verifier log (last 40 lines) ---\n${e.log.trimEnd().split('\n').slice(-40).join('\n')}\n`);
      return 1;
    }
    throw e;
  }
  const file = statsPath(h.mountpoint);
  mkdirSync(STATS_DIR, { recursive: true });
  const write = async () => {
    try {
      const s: StatsFile = {
        mountpoint: h.mountpoint, backings: a.backings.map((b) => resolve(b)), mode: h.mode, program: h.object,
        pid: process.pid, updated: Date.now(), stats: await h.stats(), perBacking: await h.backings(),
      };
      writeFileSync(`${file}.tmp`, JSON.stringify(s, null, 1) + '\n');
      renameSync(`${file}.tmp`, file);
    } catch { /* the mount is going away */ }
  };
  await write();
  const timer = setInterval(() => void write(), 1000);
  process.stdout.write(`fuse-kfunc: mounted ${a.backings.join(' + ')} on ${h.mountpoint} (${h.mode}` +
    `${h.object ? `: ${h.object}` : ''})\n  stats: fuse-kfunc stats ${h.mountpoint}\n  stop:  Ctrl-C, kill ${process.pid}, or umount ${h.mountpoint}\n`);
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    void h.close();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  await h.closed;
  clearInterval(timer);
  const final = await h.close();
  const per = await h.backings().catch(() => undefined);
  rmSync(file, { force: true });
  process.stdout.write(`fuse-kfunc: ${h.mountpoint} unmounted\n${final ? formatStats(final) + '\n' : ''}` +
    `${per ? formatPerBacking(per, a.backings) + '\n' : ''}`);
  return 0;
}

export function readStatsFile(mountpoint: string): StatsFile {
  const candidates = [resolve(mountpoint)];
  try { candidates.push(realpathSync(mountpoint)); } catch { /* a dead mount: resolve() must do */ }
  for (const c of candidates) {
    let s: StatsFile;
    try {
      s = JSON.parse(readFileSync(statsPath(c), 'utf8')) as StatsFile;
    } catch {
      continue;
    }
    let alive = true;
    try { process.kill(s.pid, 0); } catch { alive = false; }
    if (!alive) throw new MountError(`the mount process of ${c} (pid ${s.pid}) is gone; stale ${statsPath(c)}`, 'stale');
    return s;
  }
  throw new MountError(`no fuse-kfunc mount on ${candidates[0]} (no ${statsPath(candidates[0]!)}; is \`fuse-kfunc mount\` running?)`, 'not-mounted');
}

export function statsCmd(argv: string[]): number {
  const a = parseStatsArgs(argv);
  if (a.help) { process.stdout.write(STATS_HELP + '\n'); return 0; }
  let s;
  try {
    s = readStatsFile(a.mountpoint);
  } catch (e) {
    if (e instanceof MountError) { process.stderr.write(`fuse-kfunc stats: ${e.message}\n`); return 1; }
    throw e;
  }
  if (a.json) { process.stdout.write(JSON.stringify(s, null, 1) + '\n'); return 0; }
  const age = ((Date.now() - s.updated) / 1000).toFixed(1);
  process.stdout.write(`${s.mountpoint}: ${s.mode}${s.program ? ` (${s.program})` : ''}, backing ${s.backings.join(' + ')}, pid ${s.pid}, ${age} s ago\n`);
  process.stdout.write(formatStats(s.stats) + '\n');
  if (s.perBacking) process.stdout.write(`\nper backing directory:\n${formatPerBacking(s.perBacking, s.backings)}\n`);
  return 0;
}
