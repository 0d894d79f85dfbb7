// Stand-in Kubernetes API server (test infrastructure): the object store. One
// global resourceVersion counter across all kinds (as etcd's revision), a
// bounded history of change events for watches, label and field selectors, and
// compaction on demand. Invariants: every write bumps the counter once and
// records exactly one event; a stored object's metadata.resourceVersion is the
// counter value of its last write; a watch from version N receives every event
// after N, in order, or is told 410 Gone when events after N were compacted.
import { randomUUID } from 'node:crypto';
import { type Json, type JsonObject, clone, isObject } from './patch.js';
import { type ResourceType, RESOURCES, apiVersionOf } from './resources.js';

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';
export interface StoredEvent {
  rv: number;
  type: EventType;
  resource: ResourceType;
  object: JsonObject;
}

export interface Watcher {
  resource: ResourceType;
  namespace: string | undefined;
  matches(obj: JsonObject): boolean;
  send(type: EventType, obj: JsonObject): void;
}

export class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: JsonObject,
  ) {
    super(message);
  }
}

export function metaOf(obj: JsonObject): JsonObject {
  const m = obj['metadata'];
  return isObject(m) ? m : {};
}
export function nameOf(obj: JsonObject): string {
  return String(metaOf(obj)['name'] ?? '');
}
export function namespaceOf(obj: JsonObject): string {
  return String(metaOf(obj)['namespace'] ?? '');
}

type LabelTest = (labels: Record<string, string>) => boolean;

/** Parses a label selector (=, ==, !=, in, notin, exists, !key); throws a 400 naming the bad term. */
export function parseLabelSelector(sel: string): LabelTest {
  const tests: LabelTest[] = [];
  // split on commas outside parentheses
  const terms: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of sel) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      terms.push(cur);
      cur = '';
    } else cur += ch;
  }
  if (cur.trim() !== '') terms.push(cur);
  for (const raw of terms) {
    const t = raw.trim();
    let m: RegExpMatchArray | null;
    if ((m = t.match(/^([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)$/))) {
      const [, key, op, list] = m as unknown as [string, string, string, string];
      const values = list.split(',').map((v) => v.trim());
      tests.push(op === 'in' ? (l) => key in l && values.includes(l[key]!) : (l) => !(key in l) || !values.includes(l[key]!));
    } else if ((m = t.match(/^([\w./-]+)\s*(==|=|!=)\s*([\w./-]*)$/))) {
      const [, key, op, value] = m as unknown as [string, string, string, string];
      tests.push(op === '!=' ? (l) => l[key] !== value : (l) => l[key] === value);
    } else if ((m = t.match(/^!\s*([\w./-]+)$/))) {
      const key = m[1]!;
      tests.push((l) => !(key in l));
    } else if ((m = t.match(/^([\w./-]+)$/))) {
      const key = m[1]!;
      tests.push((l) => key in l);
    } else throw new ApiError(400, 'BadRequest', `unable to parse requirement: invalid label selector term "${t}"`);
  }
  return (labels) => tests.every((f) => f(labels));
}

function fieldValue(obj: JsonObject, path: string): string {
  let cur: Json | undefined = obj;
  for (const seg of path.split('.')) cur = isObject(cur) ? cur[seg] : undefined;
  return cur === undefined || cur === null ? '' : String(cur);
}

/** Field selectors: any dotted path with =, == or != (the real server allows a per-kind set; this is a superset). */
export function parseFieldSelector(sel: string): (obj: JsonObject) => boolean {
  const tests: ((o: JsonObject) => boolean)[] = [];
  for (const raw of sel.split(',')) {
    const t = raw.trim();
    if (t === '') continue;
    const m = t.match(/^([\w.]+)\s*(==|=|!=)\s*(.*)$/);
    if (!m) throw new ApiError(400, 'BadRequest', `invalid field selector "${t}"`);
    const [, path, op, value] = m as unknown as [string, string, string, string];
    tests.push(op === '!=' ? (o) => fieldValue(o, path) !== value : (o) => fieldValue(o, path) === value);
  }
  return (o) => tests.every((f) => f(o));
}

export function labelsOf(obj: JsonObject): Record<string, string> {
  const l = metaOf(obj)['labels'];
  const out: Record<string, string> = {};
  if (isObject(l)) for (const [k, v] of Object.entries(l)) out[k] = String(v);
  return out;
}

function keyOf(t: ResourceType): string {
  return `${t.group}/${t.plural}`;
}

export class ObjectStore {
  private rv = 0;
  /** all events with rv > floor are still in history */
  private floor = 0;
  private readonly history: StoredEvent[] = [];
  private readonly objects = new Map<string, Map<string, JsonObject>>();
  private readonly watchers = new Set<Watcher>();

  constructor(readonly historyLimit = 10_000) {
    for (const t of RESOURCES) this.objects.set(keyOf(t), new Map());
  }

  get resourceVersion(): number {
    return this.rv;
  }
  /** the oldest version a watch may start from */
  get oldestWatchable(): number {
    return this.floor;
  }

  private table(t: ResourceType): Map<string, JsonObject> {
    // custom resources' tables appear with their CustomResourceDefinition (crds.ts)
    let m = this.objects.get(keyOf(t));
    if (!m) this.objects.set(keyOf(t), (m = new Map()));
    return m;
  }

  get(t: ResourceType, namespace: string, name: string): JsonObject | undefined {
    const o = this.table(t).get(`${t.namespaced ? namespace : ''}/${name}`);
    return o ? clone(o) : undefined;
  }

  /** objects in (namespace or all), sorted by namespace/name as the real server lists them */
  list(t: ResourceType, namespace: string | undefined, match: (o: JsonObject) => boolean): JsonObject[] {
    return this.listShared(t, namespace, match).map((o) => clone(o));
  }

  /** As list, but the stored objects themselves: the caller clones what it returns or changes (a page, not all 20,000). */
  listShared(t: ResourceType, namespace: string | undefined, match: (o: JsonObject) => boolean): readonly JsonObject[] {
    const out: JsonObject[] = [];
    for (const [k, o] of [...this.table(t).entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      if (t.namespaced && namespace !== undefined && !k.startsWith(`${namespace}/`)) continue;
      if (match(o)) out.push(o);
    }
    return out;
  }

  /** stores obj (create when absent, replace otherwise), stamping uid/creation on create */
  put(t: ResourceType, obj: JsonObject): JsonObject {
    const meta = metaOf(obj);
    const key = `${t.namespaced ? String(meta['namespace'] ?? '') : ''}/${String(meta['name'])}`;
    const prior = this.table(t).get(key);
    const stored = clone(obj);
    stored['apiVersion'] = apiVersionOf(t);
    stored['kind'] = t.kind;
    const m = metaOf(stored);
    if (!prior) {
      m['uid'] = randomUUID();
      m['creationTimestamp'] = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    }
    m['resourceVersion'] = String(++this.rv);
    stored['metadata'] = m;
    this.table(t).set(key, stored);
    this.record(prior ? 'MODIFIED' : 'ADDED', t, stored);
    return clone(stored);
  }

  remove(t: ResourceType, namespace: string, name: string): JsonObject | undefined {
    const key = `${t.namespaced ? namespace : ''}/${name}`;
    const prior = this.table(t).get(key);
    if (!prior) return undefined;
    this.table(t).delete(key);
    const gone = clone(prior);
    metaOf(gone)['resourceVersion'] = String(++this.rv);
    this.record('DELETED', t, gone);
    return clone(gone);
  }

  private record(type: EventType, t: ResourceType, obj: JsonObject): void {
    this.history.push({ rv: this.rv, type, resource: t, object: clone(obj) });
    while (this.history.length > this.historyLimit) this.floor = this.history.shift()!.rv;
    for (const w of this.watchers) this.deliver(w, type, t, obj);
  }

  private deliver(w: Watcher, type: EventType, t: ResourceType, obj: JsonObject): void {
    if (w.resource !== t) return;
    if (w.namespace !== undefined && t.namespaced && namespaceOf(obj) !== w.namespace) return;
    if (w.matches(obj)) w.send(type, clone(obj));
  }

  /**
   * Starts a watch. `from` undefined: current objects as ADDED, then live events.
   * `from` N: replays history after N; throws ApiError 410 when N was compacted.
   */
  watch(w: Watcher, from: number | undefined): () => void {
    if (from === undefined) {
      for (const o of this.list(w.resource, w.namespace, w.matches)) w.send('ADDED', o);
    } else {
      if (from < this.floor) throw new ApiError(410, 'Expired', `too old resource version: ${from} (${this.floor + 1})`);
      for (const e of this.history) if (e.rv > from) this.deliver(w, e.type, e.resource, e.object);
    }
    this.watchers.add(w);
    return () => this.watchers.delete(w);
  }

  /** Test hook: forget history up to `upTo` (default: all of it), as etcd compaction does. */
  compact(upTo = this.rv): void {
    while (this.history.length > 0 && this.history[0]!.rv <= upTo) this.history.shift();
    this.floor = Math.max(this.floor, upTo);
  }
}
