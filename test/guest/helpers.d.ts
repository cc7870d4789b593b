export declare function fixture(name: string): string;
export declare function assertInGuest(): void;
/**
 * The kernel build (libbpf, bpftool, vmlinux.h) the SDK compiles and loads against, after
 * checking that this is the VM. Exported back to FUSE_KFUNC_BUILD: the daemon children
 * find libbpf through it.
 */
export declare function guestBuild(): string;
/** Backing directories b0..b{n-1} and a mountpoint under work/name, created. */
export declare function mountDirs(work: string, name: string, n: number): {
    b: string[];
    mnt: string;
};
