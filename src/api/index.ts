// The object model: kind definitions, metadata, the core kinds, parsing and CRDs.
// The kinds meshfed serves (core + policy plugins) are composed in src/registry.ts.
export * from './meta.js';
export * from './kind.js';
export * from './registry.js';
export * from './parse.js';
export * from './kinds/cluster.js';
export * from './kinds/mesh.js';
export * from './kinds/service.js';
export * from './kinds/workload.js';
export * from './crd.js';
