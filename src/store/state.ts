// The store's state in memory: every object by kind, and by kind + cluster for
// objects with spec.cluster (what one agent reported), at revision `rev`.
// Invariants: stored objects are never mutated in place (a change replaces
// them), so readers may hold them without copying; `rev` only moves when a
// durable commit (or the replay of one) has been applied.
import { clusterOf, type ApiObject } from '../api/meta.js';
import type { ListFilter } from './store.js';

/** One object's new state under a key: the object, or null for deleted. */
export interface Change {
  kind: string;
  obj: ApiObject | null;
}

export function kindOfKey(key: string): string {
  return key.slice(0, key.indexOf('/'));
}

function clusterIndexKey(kind: string, cluster: string): string {
  return `${kind}\u0000${cluster}`;
}

export class StoreState {
  /** kind -> key -> object. */
  private readonly byKind = new Map<string, Map<string, ApiObject>>();
  /** kind + cluster -> key -> object. */
  private readonly byCluster = new Map<string, Map<string, ApiObject>>();
  /** The revision the objects are at. */
  rev = 0;

  /** The stored object under a key (not a copy). */
  lookup(key: string): ApiObject | undefined {
    return this.byKind.get(kindOfKey(key))?.get(key);
  }

  /** Stored objects matching a filter, by the narrowest index that answers it (not copies, unsorted). */
  *select(filter: ListFilter): Generator<[string, ApiObject]> {
    let sources: Iterable<Map<string, ApiObject>>;
    if (filter.kind !== undefined && filter.cluster !== undefined) sources = [this.byCluster.get(clusterIndexKey(filter.kind, filter.cluster)) ?? new Map()];
    else if (filter.kind !== undefined) sources = [this.byKind.get(filter.kind) ?? new Map()];
    else sources = this.byKind.values();
    for (const m of sources) {
      for (const entry of m) {
        const o = entry[1];
        if (filter.namespace !== undefined && o.metadata.namespace !== filter.namespace) continue;
        if (filter.cluster !== undefined && clusterOf(o) !== filter.cluster) continue;
        yield entry;
      }
    }
  }

  /** How many objects match, from an index where one answers exactly. */
  count(filter: ListFilter): number {
    if (filter.namespace === undefined) {
      if (filter.kind !== undefined && filter.cluster !== undefined) return this.byCluster.get(clusterIndexKey(filter.kind, filter.cluster))?.size ?? 0;
      if (filter.kind !== undefined && filter.cluster === undefined) return this.byKind.get(filter.kind)?.size ?? 0;
    }
    let n = 0;
    for (const _ of this.select(filter)) n++;
    return n;
  }

  /** Every stored object (not copies): what a snapshot writes. */
  all(): ApiObject[] {
    const objects: ApiObject[] = [];
    for (const m of this.byKind.values()) for (const o of m.values()) objects.push(o);
    return objects;
  }

  apply(key: string, c: Change): void {
    const m = this.byKind.get(c.kind);
    const prev = m?.get(key);
    // The cluster is part of the key, so a put never moves an object to another cluster.
    const cluster = (c.obj ? clusterOf(c.obj) : undefined) ?? (prev ? clusterOf(prev) : undefined);
    const ck = cluster === undefined ? undefined : clusterIndexKey(c.kind, cluster);
    if (c.obj !== null) {
      if (m === undefined) this.byKind.set(c.kind, new Map([[key, c.obj]]));
      else m.set(key, c.obj);
      if (ck !== undefined) {
        const cm = this.byCluster.get(ck);
        if (cm === undefined) this.byCluster.set(ck, new Map([[key, c.obj]]));
        else cm.set(key, c.obj);
      }
    } else {
      if (m !== undefined) {
        m.delete(key);
        if (m.size === 0) this.byKind.delete(c.kind);
      }
      if (ck !== undefined) {
        const cm = this.byCluster.get(ck);
        if (cm !== undefined) {
          cm.delete(key);
          if (cm.size === 0) this.byCluster.delete(ck);
        }
      }
    }
  }
}
