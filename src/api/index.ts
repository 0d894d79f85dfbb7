export * from './meta.js';
export * from './kind.js';
export * from './registry.js';
export * from './parse.js';
export * from './kinds/cluster.js';
export * from './kinds/mesh.js';
export * from './kinds/service.js';
export * from './kinds/workload.js';
