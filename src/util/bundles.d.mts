export type BundleName = 'cli' | 'mount-serve' | 'stress' | 'fuzz' | 'thread-server' | 'index';
export declare const BUNDLES: Record<BundleName, string>;
export declare const MANIFEST: string;
export declare const HASHES: string;
export declare function fileHash(path: string): string;
export declare function staleBundle(repo: string, name: BundleName): string | null;
export declare function nodeEntry(repo: string, name: BundleName): { file: string; execArgv: string[]; bundled: boolean };
/** A module for a worker thread to import, as a file: URL (a bundle, built here if stale). */
export declare function workerModule(repo: string, name: BundleName): string;
