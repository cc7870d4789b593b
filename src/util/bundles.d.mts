export type BundleName = 'cli' | 'mount-serve' | 'mirror-serve' | 'serve' | 'stress' | 'fuzz';
export declare const BUNDLES: Record<BundleName, string>;
export declare const MANIFEST: string;
export declare function staleBundle(repo: string, name: BundleName): string | null;
export declare function nodeEntry(repo: string, name: BundleName): { file: string; execArgv: string[]; bundled: boolean };
