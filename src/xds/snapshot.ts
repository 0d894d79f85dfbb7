// The import path of the versioned store before it moved into the cache layer
// (cache/snapshot.ts); tests import contentHash from here. Nothing but re-exports.
export * from './cache/snapshot.js';
