export { BpfObjectSpec, LoadedObject, Program, BpfMap, Link, type OpenOptions } from './object.ts';
export { BpfError, VerifierError, errnoName, keyLogLines } from './errors.ts';
export { findLibbpf } from './libbpf.ts';
