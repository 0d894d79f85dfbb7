// Stand-in Kubernetes API server (test infrastructure): what the verbs do to
// objects, after the real server's generic registry. create (name and namespace
// checks, generateName, status per kind on create), update (409 on a stale
// resourceVersion; the main resource keeps status, /status changes only
// status), patch (JSON, merge, strategic merge; custom resources refuse
// strategic merge with 415), server-side apply (create-or-merge per field
// manager, removal of fields a manager stopped applying, 409 on a field another
// Apply manager set differently unless force), delete (finalizers hold the
// object with a deletionTimestamp). Invariants: every check runs before the one
// store write, so a refused request changes nothing; managedFields holds one
// entry per (manager, operation, subresource); generation counts spec changes.
import { parse as parseYaml } from 'yaml';
import { type Json, type JsonObject, PatchError, applyConfig, clone, fieldLeaves, fieldPathText, fieldsV1, isObject, jsonPatch, mergePatch, strategicMerge } from './patch.js';
import { type ResourceType, RESOURCES, apiVersionOf } from './resources.js';
import { ApiError, type ObjectStore, metaOf, nameOf } from './store.js';

export interface Target {
  type: ResourceType;
  namespace: string; // '' for cluster-scoped
  name: string;
  subresource: '' | 'status';
}

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;

export function notFound(type: ResourceType, name: string): ApiError {
  const what = type.group ? `${type.plural}.${type.group}` : type.plural;
  return new ApiError(404, 'NotFound', `${what} "${name}" not found`, { name, group: type.group, kind: type.plural });
}

function invalid(type: ResourceType, name: string, field: string, value: Json, why: string): ApiError {
  const message = `${field}: Invalid value: ${JSON.stringify(value)}: ${why}`;
  const what = type.group ? `${type.kind}.${type.group}` : type.kind;
  return new ApiError(422, 'Invalid', `${what} "${name}" is invalid: ${message}`, { name, group: type.group, kind: type.kind, causes: [{ reason: 'FieldValueInvalid', message, field }] });
}

function conflict(type: ResourceType, name: string, message: string): ApiError {
  const what = type.group ? `${type.plural}.${type.group}` : type.plural;
  return new ApiError(409, 'Conflict', `Operation cannot be fulfilled on ${what} "${name}": ${message}`, { name, group: type.group, kind: type.plural });
}

function validateName(type: ResourceType, name: string): void {
  if (type.kind === 'Service' && !DNS1035_LABEL.test(name)) {
    throw invalid(
      type,
      name,
      'metadata.name',
      name,
      "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
    );
  }
  if (type.kind === 'Namespace' && !DNS1123_LABEL.test(name)) {
    throw invalid(type, name, 'metadata.name', name, "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character");
  }
  if (name.length > 253 || !DNS1123_SUBDOMAIN.test(name)) {
    throw invalid(
      type,
      name,
      'metadata.name',
      name,
      "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
    );
  }
}

/** Parses a request body: JSON, or YAML for apply patches. */
export function parseBody(text: string, contentType: string): Json {
  try {
    return (contentType.includes('yaml') ? parseYaml(text) : JSON.parse(text)) as Json;
  } catch (err) {
    throw new ApiError(400, 'BadRequest', `the request body is not valid ${contentType.includes('yaml') ? 'YAML' : 'JSON'}: ${(err as Error).message}`);
  }
}

function checkKind(t: Target, body: Json): JsonObject {
  if (!isObject(body)) throw new ApiError(400, 'BadRequest', 'the request body must be an object');
  const want = apiVersionOf(t.type);
  if (body['apiVersion'] !== undefined && body['apiVersion'] !== want) {
    throw new ApiError(400, 'BadRequest', `the API version in the data (${String(body['apiVersion'])}) does not match the expected API version (${want})`);
  }
  if (body['kind'] !== undefined && body['kind'] !== t.type.kind) {
    throw new ApiError(400, 'BadRequest', `the kind in the data (${String(body['kind'])}) does not match the expected kind (${t.type.kind})`);
  }
  const meta = metaOf(body);
  if (t.type.namespaced && meta['namespace'] !== undefined && meta['namespace'] !== '' && meta['namespace'] !== t.namespace) {
    throw new ApiError(400, 'BadRequest', 'the namespace of the provided object does not match the namespace sent on the request');
  }
  return clone(body);
}

/** spec and every other non-metadata, non-status field: what generation counts */
function specOf(obj: JsonObject): string {
  const rest: JsonObject = {};
  for (const [k, v] of Object.entries(obj)) if (k !== 'metadata' && k !== 'status' && k !== 'apiVersion' && k !== 'kind') rest[k] = v;
  return JSON.stringify(rest);
}

function statusOnCreate(type: ResourceType, obj: JsonObject): void {
  if (!type.hasStatus || type.statusOnCreate === 'keep') return;
  if (type.statusOnCreate === 'pod') obj['status'] = { phase: 'Pending', qosClass: 'BestEffort' };
  else if (type.statusOnCreate === 'namespace') obj['status'] = { phase: 'Active' };
  else if (type.custom) delete obj['status'];
  else obj['status'] = {};
}

export class Registry {
  /** server-side apply: the last configuration each Apply manager sent, per object uid and subresource */
  private readonly applied = new Map<string, Map<string, JsonObject>>();

  constructor(readonly store: ObjectStore) {}

  get(t: Target): JsonObject {
    const o = this.store.get(t.type, t.namespace, t.name);
    if (!o) throw notFound(t.type, t.name);
    return o;
  }

  /** POST (and server-side apply of an absent object, which passes its own operation and fields) */
  create(t: Target, body: Json, manager: string, operation: 'Update' | 'Apply' = 'Update', leaves?: Map<string, string>): JsonObject {
    const obj = checkKind(t, body);
    const meta = metaOf(obj);
    if (!meta['name'] && typeof meta['generateName'] === 'string') meta['name'] = `${meta['generateName']}${Math.random().toString(36).slice(2, 7)}`;
    const name = String(meta['name'] ?? '');
    if (name === '') throw invalid(t.type, name, 'metadata.name', name, 'name or generateName is required');
    validateName(t.type, name);
    if (t.type.namespaced) {
      if (!this.store.get(NAMESPACE_TYPE, '', t.namespace)) {
        throw new ApiError(404, 'NotFound', `namespaces "${t.namespace}" not found`, { name: t.namespace, kind: 'namespaces' });
      }
      meta['namespace'] = t.namespace;
    } else delete meta['namespace'];
    if (this.store.get(t.type, t.namespace, name)) {
      const what = t.type.group ? `${t.type.plural}.${t.type.group}` : t.type.plural;
      throw new ApiError(409, 'AlreadyExists', `${what} "${name}" already exists`, { name, group: t.type.group, kind: t.type.plural });
    }
    for (const k of ['uid', 'resourceVersion', 'creationTimestamp', 'deletionTimestamp', 'managedFields']) delete meta[k];
    meta['generation'] = 1;
    obj['metadata'] = meta;
    statusOnCreate(t.type, obj);
    setManager(obj, manager, operation, '', leaves ?? fieldLeaves(withoutSystemFields(obj), t.type.mergeKeys));
    return this.store.put(t.type, obj);
  }

  /** PUT: replaces the object (or its status); body resourceVersion, when given, must be current */
  update(t: Target, body: Json, manager: string): JsonObject {
    const obj = checkKind(t, body);
    const bodyName = nameOf(obj);
    if (bodyName !== t.name) throw new ApiError(400, 'BadRequest', `the name of the object (${bodyName}) does not match the name on the URL (${t.name})`);
    const current = this.get(t);
    const rv = metaOf(obj)['resourceVersion'];
    if (rv !== undefined && rv !== '' && String(rv) !== metaOf(current)['resourceVersion']) {
      throw conflict(t.type, t.name, 'the object has been modified; please apply your changes to the latest version and try again');
    }
    return this.write(t, current, obj, manager, 'Update');
  }

  /** the one write path of update, patch and apply: system fields from `current`, subresource rules, generation */
  private write(t: Target, current: JsonObject, next: JsonObject, manager: string, operation: 'Update' | 'Apply', leaves?: Map<string, string>): JsonObject {
    const cur = metaOf(current);
    let result: JsonObject;
    if (t.subresource === 'status') {
      result = clone(current);
      if (next['status'] === undefined) delete result['status'];
      else result['status'] = clone(next['status']);
    } else {
      result = clone(next);
      if (t.type.hasStatus) {
        if (current['status'] === undefined) delete result['status'];
        else result['status'] = clone(current['status']);
      }
    }
    const meta = metaOf(result);
    for (const k of ['uid', 'creationTimestamp', 'namespace', 'name', 'generation', 'deletionTimestamp', 'managedFields']) {
      if (cur[k] === undefined) delete meta[k];
      else meta[k] = clone(cur[k]);
    }
    if (specOf(result) !== specOf(current)) meta['generation'] = Number(cur['generation'] ?? 0) + 1;
    result['metadata'] = meta;
    const part = t.subresource === 'status' ? { status: result['status'] ?? null } : withoutSystemFields(result);
    setManager(result, manager, operation, t.subresource, leaves ?? fieldLeaves(part, t.type.mergeKeys));
    if (meta['deletionTimestamp'] !== undefined && !hasFinalizers(result)) {
      this.forget(current);
      return this.store.remove(t.type, t.namespace, t.name) ?? result;
    }
    if (JSON.stringify(result) === JSON.stringify(current)) return current; // a no-op write bumps nothing
    return this.store.put(t.type, result);
  }

  patch(t: Target, patchBody: Json, contentType: string, manager: string, force: boolean): JsonObject {
    if (contentType.startsWith('application/apply-patch')) return this.apply(t, patchBody, manager, force);
    const current = this.get(t);
    let next: Json;
    try {
      if (contentType.startsWith('application/json-patch+json')) next = jsonPatch(current, patchBody);
      else if (contentType.startsWith('application/merge-patch+json')) next = mergePatch(current, patchBody);
      else if (contentType.startsWith('application/strategic-merge-patch+json')) {
        if (t.type.custom)
          throw new ApiError(
            415,
            'UnsupportedMediaType',
            'the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml',
          );
        next = strategicMerge(current, patchBody, t.type.mergeKeys);
      } else throw new ApiError(415, 'UnsupportedMediaType', `unsupported patch type "${contentType}"`);
    } catch (err) {
      if (err instanceof PatchError) throw new ApiError(err.code, err.code === 422 ? 'Invalid' : 'BadRequest', err.message);
      throw err;
    }
    const obj = checkKind(t, next);
    const rv = metaOf(obj)['resourceVersion'];
    if (rv !== undefined && String(rv) !== metaOf(current)['resourceVersion']) {
      throw conflict(t.type, t.name, 'the object has been modified; please apply your changes to the latest version and try again');
    }
    if (nameOf(obj) !== t.name) throw new ApiError(400, 'BadRequest', 'metadata.name cannot be changed by a patch');
    return this.write(t, current, obj, manager, 'Update');
  }

  private apply(t: Target, body: Json, manager: string, force: boolean): JsonObject {
    if (!manager) throw new ApiError(400, 'BadRequest', 'PATCH with application/apply-patch+yaml requires the fieldManager query parameter');
    const config = checkKind(t, body);
    if (config['apiVersion'] === undefined || config['kind'] === undefined) throw new ApiError(400, 'BadRequest', 'an apply configuration must set apiVersion and kind');
    if (nameOf(config) !== t.name) throw new ApiError(400, 'BadRequest', `the name of the object (${nameOf(config)}) does not match the name on the URL (${t.name})`);
    const meta = metaOf(config);
    if (meta['resourceVersion'] !== undefined) {
      const existing = this.store.get(t.type, t.namespace, t.name);
      if (!existing || String(meta['resourceVersion']) !== metaOf(existing)['resourceVersion'])
        throw conflict(t.type, t.name, 'the object has been modified; please apply your changes to the latest version and try again');
    }
    delete meta['resourceVersion'];
    const part: JsonObject = t.subresource === 'status' ? { status: config['status'] ?? null } : withoutSystemFields(config);
    const leaves = fieldLeaves(part, t.type.mergeKeys);
    const existing = this.store.get(t.type, t.namespace, t.name);
    if (!existing) {
      if (t.subresource === 'status') throw notFound(t.type, t.name);
      const created = this.create(t, config, manager, 'Apply', leaves);
      this.remember(created, manager, t.subresource, part);
      return created;
    }
    const mine = this.applied.get(String(metaOf(existing)['uid']));
    const clashes: string[] = [];
    for (const [other, otherConfig] of mine ?? []) {
      const [otherManager, sub] = other.split('\u0000') as [string, string];
      if (otherManager === manager || sub !== t.subresource) continue;
      const theirs = fieldLeaves(otherConfig, t.type.mergeKeys);
      for (const [path, value] of leaves) if (theirs.has(path) && theirs.get(path) !== value) clashes.push(`conflict with "${otherManager}": ${fieldPathText(path)}`);
    }
    if (clashes.length > 0 && !force) {
      throw new ApiError(409, 'Conflict', `Apply failed with ${clashes.length} conflict${clashes.length > 1 ? 's' : ''}: ${clashes.join('\n')}`, {
        name: t.name,
        group: t.type.group,
        kind: t.type.plural,
        causes: clashes.map((c) => ({ reason: 'FieldManagerConflict', message: c })),
      });
    }
    const previous = mine?.get(`${manager}\u0000${t.subresource}`);
    const next = applyConfig(existing, previous, part, t.type.mergeKeys);
    const written = this.write(t, existing, next, manager, 'Apply', leaves);
    this.remember(written, manager, t.subresource, part);
    return written;
  }

  private remember(obj: JsonObject, manager: string, subresource: string, config: JsonObject): void {
    const uid = String(metaOf(obj)['uid']);
    const m = this.applied.get(uid) ?? new Map<string, JsonObject>();
    m.set(`${manager}\u0000${subresource}`, clone(config));
    this.applied.set(uid, m);
  }

  private forget(obj: JsonObject): void {
    this.applied.delete(String(metaOf(obj)['uid']));
  }

  /** DELETE: finalizers keep the object (deletionTimestamp set); otherwise it goes now */
  delete(t: Target, preconditionRv: string | undefined): { object: JsonObject; gone: boolean } {
    const current = this.get(t);
    if (preconditionRv !== undefined && preconditionRv !== metaOf(current)['resourceVersion']) {
      throw conflict(
        t.type,
        t.name,
        `the ResourceVersion in the precondition (${preconditionRv}) does not match the ResourceVersion in record (${String(metaOf(current)['resourceVersion'])}). The object might have been modified`,
      );
    }
    if (hasFinalizers(current)) {
      const marked = clone(current);
      const meta = metaOf(marked);
      if (meta['deletionTimestamp'] === undefined) {
        meta['deletionTimestamp'] = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
        meta['deletionGracePeriodSeconds'] = 0;
        return { object: this.store.put(t.type, marked), gone: false };
      }
      return { object: current, gone: false };
    }
    this.forget(current);
    if (t.type.kind === 'Namespace') this.emptyNamespace(t.name);
    return { object: this.store.remove(t.type, t.namespace, t.name) ?? current, gone: true };
  }

  private emptyNamespace(ns: string): void {
    for (const type of namespacedTypes) for (const o of this.store.list(type, ns, () => true)) this.store.remove(type, ns, nameOf(o));
  }
}

const NAMESPACE_TYPE = RESOURCES.find((t) => t.kind === 'Namespace')!;
const namespacedTypes = RESOURCES.filter((t) => t.namespaced);

function hasFinalizers(obj: JsonObject): boolean {
  const f = metaOf(obj)['finalizers'];
  return Array.isArray(f) && f.length > 0;
}

/** what a manager can own: everything but system metadata and (outside /status) status */
function withoutSystemFields(obj: JsonObject): JsonObject {
  const out = clone(obj);
  delete out['status'];
  delete out['apiVersion'];
  delete out['kind'];
  const meta = metaOf(out);
  for (const k of ['name', 'namespace', 'uid', 'resourceVersion', 'creationTimestamp', 'generation', 'managedFields', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'selfLink']) delete meta[k];
  if (Object.keys(meta).length === 0) delete out['metadata'];
  else out['metadata'] = meta;
  return out;
}

function setManager(obj: JsonObject, manager: string, operation: 'Update' | 'Apply', subresource: string, leaves: Map<string, string>): void {
  if (!manager) return;
  const meta = metaOf(obj);
  const entries = (Array.isArray(meta['managedFields']) ? meta['managedFields'] : []).filter(
    (e) => !(isObject(e) && e['manager'] === manager && e['operation'] === operation && (e['subresource'] ?? '') === subresource),
  );
  const entry: JsonObject = {
    manager,
    operation,
    apiVersion: String(obj['apiVersion'] ?? ''),
    time: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    fieldsType: 'FieldsV1',
    fieldsV1: fieldsV1([...leaves.keys()]),
  };
  if (subresource) entry['subresource'] = subresource;
  entries.push(entry);
  meta['managedFields'] = entries;
  obj['metadata'] = meta;
}
