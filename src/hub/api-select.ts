// What a list or watch of one kind selects, from its query: ?namespace= (namespaced
// kinds only), ?cluster= and ?labelSelector= (src/api/selector.ts, kubectl's
// syntax). Applied at the hub so a large list is filtered where it is stored.
// A watch with a selector reports, as the Kubernetes API does, an object that
// stops matching as DELETED and one that starts matching as ADDED: it keeps
// the keys of the objects it reported matching (bounded by the kind's objects).
import { clusterOf, keyOf, refOf, type ApiObject, type KindDef } from '../api/index.js';
import { labelsMatch, parseSelector, type LabelSelector } from '../api/selector.js';
import type { ListFilter, WatchEvent } from '../store/store.js';

export interface Selection {
  filter: ListFilter;
  labels: LabelSelector;
}

/** The selection of a list or watch request; a malformed labelSelector is an 'invalid' error (400) naming it. */
export function selectionOf(def: KindDef, q: URLSearchParams): Selection {
  const filter: ListFilter = { kind: def.kind };
  // A cluster-scoped kind has no namespace: ?namespace= does not filter it (as kubectl -n on nodes).
  if (q.get('namespace') && def.namespaced) filter.namespace = q.get('namespace')!;
  if (q.get('cluster')) filter.cluster = q.get('cluster')!;
  return { filter, labels: parseSelector(q.get('labelSelector') ?? '') };
}

/** Whether an object of the selection's kind is in its namespace and cluster (the store's filter) and matches its labels. */
export function selects(s: Selection, o: ApiObject): boolean {
  if (o.kind !== s.filter.kind) return false;
  if (s.filter.namespace !== undefined && o.metadata.namespace !== s.filter.namespace) return false;
  if (s.filter.cluster !== undefined && clusterOf(o) !== s.filter.cluster) return false;
  return labelsMatch(s.labels, o.metadata.labels);
}

/**
 * A watch's filter: each store event as the watcher sees it, or undefined. `current`
 * is what matches when the watch starts (a later change that stops matching is DELETED).
 */
export function watchFilter(s: Selection, current: Iterable<ApiObject>): (e: WatchEvent) => WatchEvent | undefined {
  const matching = new Set<string>();
  for (const o of current) if (selects(s, o)) matching.add(keyOf(refOf(o)));
  return (e) => {
    if (e.object.kind !== s.filter.kind) return undefined;
    const key = keyOf(refOf(e.object));
    const was = matching.has(key);
    const is = e.type !== 'DELETED' && selects(s, e.object);
    if (is) matching.add(key);
    else matching.delete(key);
    if (e.type === 'DELETED') return was ? e : undefined;
    if (is) return was || e.type === 'ADDED' ? e : { ...e, type: 'ADDED' };
    return was ? { ...e, type: 'DELETED' } : undefined;
  };
}
