// Stand-in Kubernetes API server (test infrastructure): the patch algebra. JSON
// merge patch (RFC 7386), JSON patch (RFC 6902), strategic merge patch as kubectl's
// client-side apply sends it (merge keys per list from resources.ts, the
// `$patch`, `$setElementOrder/`, `$retainKeys` and `$deleteFromPrimitiveList/`
// directives), and the merge step of server-side apply with a minimal
// FieldsV1 set. Invariants: inputs are never mutated (every function returns a
// fresh value); a malformed patch throws PatchError, which the server answers
// with a 4xx Status, so nothing is half-applied.

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type JsonObject = { [k: string]: Json };

export class PatchError extends Error {
  constructor(
    message: string,
    readonly code: 400 | 409 | 422 = 422,
  ) {
    super(message);
  }
}

export function isObject(v: Json | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function clone<T extends Json>(v: T): T {
  return structuredClone(v);
}

/** RFC 7386: objects merge recursively, null deletes, anything else replaces. */
export function mergePatch(target: Json | undefined, patch: Json): Json {
  if (!isObject(patch)) return clone(patch);
  const out: JsonObject = isObject(target) ? clone(target) : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

function itemKey(item: Json, key: string): string | undefined {
  return isObject(item) && item[key] !== undefined ? JSON.stringify(item[key]) : undefined;
}

/** Strategic merge patch; `path` is the dotted field path (list items skipped) used to find merge keys. */
export function strategicMerge(target: Json | undefined, patch: Json, mergeKeys: Record<string, string>, path = ''): Json {
  if (!isObject(patch)) return clone(patch);
  if (patch['$patch'] === 'replace') {
    const rest = clone(patch);
    delete rest['$patch'];
    return rest;
  }
  if (patch['$patch'] === 'delete') return null;
  const out: JsonObject = isObject(target) ? clone(target) : {};
  const retain = patch['$retainKeys'];
  if (Array.isArray(retain)) for (const k of Object.keys(out)) if (!retain.includes(k)) delete out[k];
  const orders: Record<string, Json[]> = {};
  for (const [k, v] of Object.entries(patch)) {
    if (k === '$patch' || k === '$retainKeys') continue;
    if (k.startsWith('$setElementOrder/')) {
      if (!Array.isArray(v)) throw new PatchError(`${k} must be a list`, 400);
      orders[k.slice('$setElementOrder/'.length)] = v;
      continue;
    }
    if (k.startsWith('$deleteFromPrimitiveList/')) {
      const field = k.slice('$deleteFromPrimitiveList/'.length);
      const cur = out[field];
      if (Array.isArray(cur) && Array.isArray(v)) out[field] = cur.filter((x) => !v.some((d) => JSON.stringify(d) === JSON.stringify(x)));
      continue;
    }
    const sub = path ? `${path}.${k}` : k;
    if (v === null) delete out[k];
    else if (Array.isArray(v) && mergeKeys[sub] !== undefined) out[k] = mergeList(out[k], v, mergeKeys[sub]!, mergeKeys, sub);
    else if (Array.isArray(v) && sub === 'metadata.finalizers') out[k] = [...new Set([...(Array.isArray(out[k]) ? out[k] : []), ...v].map((x) => JSON.stringify(x)))].map((s) => JSON.parse(s) as Json);
    else if (isObject(v)) out[k] = strategicMerge(out[k], v, mergeKeys, sub);
    else out[k] = clone(v);
  }
  for (const [field, order] of Object.entries(orders)) {
    const key = mergeKeys[path ? `${path}.${field}` : field];
    const cur = out[field];
    if (!key || !Array.isArray(cur)) continue;
    const rank = new Map(order.map((o, i) => [itemKey(o, key), i]));
    out[field] = [...cur].sort((a, b) => (rank.get(itemKey(a, key)) ?? order.length) - (rank.get(itemKey(b, key)) ?? order.length));
  }
  return out;
}

function mergeList(target: Json | undefined, patch: Json[], key: string, mergeKeys: Record<string, string>, path: string): Json[] {
  const out: Json[] = Array.isArray(target) ? clone(target) : [];
  for (const item of patch) {
    if (isObject(item) && item['$patch'] === 'replace') return patch.filter((p) => !(isObject(p) && p['$patch'] === 'replace')).map((p) => clone(p));
    const k = itemKey(item, key);
    if (k === undefined) throw new PatchError(`${path}: every item needs the merge key "${key}"`);
    const at = out.findIndex((o) => itemKey(o, key) === k);
    if (isObject(item) && item['$patch'] === 'delete') {
      if (at >= 0) out.splice(at, 1);
      continue;
    }
    if (at >= 0) out[at] = strategicMerge(out[at], item, mergeKeys, path);
    else out.push(strategicMerge(undefined, item, mergeKeys, path));
  }
  return out;
}

function pointer(p: string): string[] {
  if (p === '') return [];
  if (!p.startsWith('/')) throw new PatchError(`JSON pointer "${p}" must start with /`, 400);
  return p
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function parentOf(doc: Json, parts: string[], p: string): { parent: Json; last: string } {
  let cur: Json = doc;
  for (const seg of parts.slice(0, -1)) {
    const next: Json | undefined = Array.isArray(cur) ? cur[Number(seg)] : isObject(cur) ? cur[seg] : undefined;
    if (next === undefined) throw new PatchError(`JSON patch path ${p} does not exist`);
    cur = next;
  }
  return { parent: cur, last: parts[parts.length - 1] ?? '' };
}

function getAt(doc: Json, p: string): Json {
  const parts = pointer(p);
  if (parts.length === 0) return doc;
  const { parent, last } = parentOf(doc, parts, p);
  const v = Array.isArray(parent) ? parent[Number(last)] : isObject(parent) ? parent[last] : undefined;
  if (v === undefined) throw new PatchError(`JSON patch path ${p} does not exist`);
  return v;
}

function removeAt(doc: Json, p: string): void {
  const parts = pointer(p);
  const { parent, last } = parentOf(doc, parts, p);
  if (Array.isArray(parent) && Number(last) < parent.length) parent.splice(Number(last), 1);
  else if (isObject(parent) && last in parent) delete parent[last];
  else throw new PatchError(`JSON patch cannot remove ${p}: it does not exist`);
}

function addAt(doc: Json, p: string, value: Json, replace: boolean): void {
  const parts = pointer(p);
  const { parent, last } = parentOf(doc, parts, p);
  if (Array.isArray(parent)) {
    const i = last === '-' ? parent.length : Number(last);
    if (!Number.isInteger(i) || i < 0 || i > parent.length) throw new PatchError(`JSON patch index ${p} is out of range`);
    if (replace) parent[i] = value;
    else parent.splice(i, 0, value);
  } else if (isObject(parent)) {
    if (replace && !(last in parent)) throw new PatchError(`JSON patch cannot replace ${p}: it does not exist`);
    parent[last] = value;
  } else throw new PatchError(`JSON patch path ${p} does not exist`);
}

/** RFC 6902 on a copy; the whole patch applies or none of it. */
export function jsonPatch(target: Json, ops: Json): Json {
  if (!Array.isArray(ops)) throw new PatchError('a JSON patch is a list of operations', 400);
  const doc = clone(target);
  for (const op of ops) {
    if (!isObject(op) || typeof op['op'] !== 'string' || typeof op['path'] !== 'string') throw new PatchError('every JSON patch operation needs "op" and "path"', 400);
    const path = op['path'];
    const value = op['value'] === undefined ? null : clone(op['value']);
    switch (op['op']) {
      case 'add':
        addAt(doc, path, value, false);
        break;
      case 'replace':
        addAt(doc, path, value, true);
        break;
      case 'remove':
        removeAt(doc, path);
        break;
      case 'test':
        if (JSON.stringify(getAt(doc, path)) !== JSON.stringify(op['value'])) throw new PatchError(`JSON patch test failed at ${path}`);
        break;
      case 'move':
      case 'copy': {
        const from = String(op['from'] ?? '');
        const v = clone(getAt(doc, from));
        if (op['op'] === 'move') removeAt(doc, from);
        addAt(doc, path, v, false);
        break;
      }
      default:
        throw new PatchError(`unknown JSON patch operation "${String(op['op'])}"`, 400);
    }
  }
  return doc;
}

/** separates the segments of a field path (a key's JSON may hold any printable character) */
export const SEP = '\u001f';

/**
 * Leaf fields of an applied configuration: path (f:spec SEP f:ports SEP k:{"port":80} SEP f:name)
 * to the JSON of its value. Keyed list items are named by merge key; other lists are atomic leaves.
 */
export function fieldLeaves(config: Json, mergeKeys: Record<string, string>, path = '', out = new Map<string, string>(), at = ''): Map<string, string> {
  if (!isObject(config)) {
    out.set(at, JSON.stringify(config));
    return out;
  }
  for (const [k, v] of Object.entries(config)) {
    const sub = path ? `${path}.${k}` : k;
    const here = `${at}${SEP}f:${k}`;
    const key = mergeKeys[sub];
    if (Array.isArray(v) && key) {
      for (const item of v) {
        const id = `${here}${SEP}k:${JSON.stringify({ [key]: isObject(item) ? item[key] : item })}`;
        if (isObject(item)) fieldLeaves(item, mergeKeys, sub, out, id);
        else out.set(id, JSON.stringify(item));
      }
    } else if (isObject(v) && Object.keys(v).length > 0) fieldLeaves(v, mergeKeys, sub, out, here);
    else out.set(here, JSON.stringify(v));
  }
  return out;
}

/** FieldsV1 as the real server shows it ({"f:metadata":{"f:labels":{"f:app":{}}}}), from fieldLeaves paths. */
export function fieldsV1(paths: string[]): JsonObject {
  const root: JsonObject = {};
  for (const p of paths) {
    let cur = root;
    for (const seg of p.split(SEP).filter((s) => s !== '')) {
      const next = cur[seg];
      cur = isObject(next) ? next : (cur[seg] = {});
    }
  }
  return root;
}

/**
 * Removes from `obj` the fields a manager applied before and no longer applies
 * (server-side apply's "remove what you stopped owning"), then merges the new
 * configuration (maps recursively, keyed lists by key, other lists replaced).
 */
export function applyConfig(obj: JsonObject, previous: JsonObject | undefined, config: JsonObject, mergeKeys: Record<string, string>): JsonObject {
  const pruned = previous ? prune(obj, previous, config, mergeKeys, '') : obj;
  return strategicMerge(pruned, stripDirectives(config), mergeKeys) as JsonObject;
}

function stripDirectives(v: Json): Json {
  if (Array.isArray(v)) return v.map(stripDirectives);
  if (!isObject(v)) return v;
  const out: JsonObject = {};
  for (const [k, x] of Object.entries(v)) if (!k.startsWith('$')) out[k] = stripDirectives(x);
  return out;
}

function prune(obj: JsonObject, prev: JsonObject, next: JsonObject, mergeKeys: Record<string, string>, path: string): JsonObject {
  const out = clone(obj);
  for (const [k, pv] of Object.entries(prev)) {
    const sub = path ? `${path}.${k}` : k;
    const nv = next[k];
    if (nv === undefined) {
      delete out[k];
      continue;
    }
    const cur = out[k];
    const key = mergeKeys[sub];
    if (isObject(pv) && isObject(nv) && isObject(cur)) out[k] = prune(cur, pv, nv, mergeKeys, sub);
    else if (Array.isArray(pv) && Array.isArray(nv) && Array.isArray(cur) && key) {
      const gone = pv.map((i) => itemKey(i, key)).filter((id) => !nv.some((n) => itemKey(n, key) === id));
      out[k] = cur.filter((c) => !gone.includes(itemKey(c, key)));
    }
  }
  return out;
}

/** ".spec.ports[port=80].name" for a field path, as conflict messages name fields */
export function fieldPathText(p: string): string {
  return p
    .split(SEP)
    .filter((s) => s !== '')
    .map((s) => (s.startsWith('f:') ? `.${s.slice(2)}` : `[${s.slice(2)}]`))
    .join('');
}
