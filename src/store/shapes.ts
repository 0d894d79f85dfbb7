// Shape checks for what the store reads back from disk (snapshot, log) or takes
// from callers. They check only what the store itself relies on: an object's
// kind and name (its key); schemas are the callers' business. Pure.
import type { ApiObject } from '../api/meta.js';

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A store revision: a non-negative safe integer. */
export function isRevision(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** The minimum the store needs to key an object (schemas are the callers' business). */
export function isStorable(v: unknown): v is ApiObject {
  return isRecord(v) && typeof v.kind === 'string' && v.kind !== '' && !v.kind.includes('/') && isRecord(v.metadata) && typeof v.metadata.name === 'string' && v.metadata.name !== '';
}
