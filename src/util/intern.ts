// String interning for API objects held in memory by the thousand (the hub's
// store, the agent's view). JSON.parse gives every object its own copy of each
// string value; the values that repeat across objects (kind, namespace, cluster,
// service, zone, health, label values...) then cost a heap string per object.
// Interning makes them one shared string. Values that are unique per object
// (names, uids, timestamps, addresses) are left alone: pooling them would only
// add a pool entry per object.

/** Property names whose string values repeat across objects. */
const REPEATING = new Set(['apiVersion', 'kind', 'namespace', 'cluster', 'service', 'serviceAccount', 'zone', 'region', 'network', 'health', 'protocol']);

/**
 * The string as one flat sequence. A string built by concatenation (a template
 * literal of 13+ characters) is a tree of its pieces in V8: about 270 bytes for
 * a 40-character key instead of 70. Keys and names held by the hundred thousand
 * (store keys, xDS resource names) are flattened when they are made.
 */
export function flat(s: string): string {
  return s.length < 13 ? s : (JSON.parse(JSON.stringify(s)) as string);
}

/** Longest value interned: longer strings are rarely shared. */
const MAX_LENGTH = 64;
/** The pool is dropped when it grows past this (already interned objects keep their strings). */
const MAX_POOL = 200_000;

let pool = new Map<string, string>();

/** The shared instance of a string. */
export function intern(s: string): string {
  if (s.length > MAX_LENGTH) return s;
  const hit = pool.get(s);
  if (hit !== undefined) return hit;
  if (pool.size >= MAX_POOL) pool = new Map();
  pool.set(s, s);
  return s;
}

/**
 * Interns, in place, the repeating string values of a parsed API object:
 * properties named in REPEATING, every label and annotation value, and the
 * names of ports. Returns the object.
 */
export function internObject<T>(o: T): T {
  walk(o as unknown, undefined);
  return o;
}

function walk(v: unknown, parentKey: string | undefined): void {
  if (v === null || typeof v !== 'object') return;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const x: unknown = v[i];
      if (typeof x === 'string') v[i] = intern(x);
      else walk(x, parentKey);
    }
    return;
  }
  const rec = v as Record<string, unknown>;
  const allValues = parentKey === 'labels' || parentKey === 'annotations' || parentKey === 'ports';
  for (const k in rec) {
    const x = rec[k];
    if (typeof x === 'string') {
      if (allValues || REPEATING.has(k) || (k === 'name' && parentKey === 'ports')) rec[k] = intern(x);
    } else if (x !== null && typeof x === 'object') walk(x, k);
  }
}
