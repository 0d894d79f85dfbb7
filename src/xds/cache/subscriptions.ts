// The subscription index: which stream types watch which names (plus the wildcard
// watchers of a type), and so who must be answered when a commit changes names.
// A watch is a stream's state for one type (server/streams.ts); the cache marks
// the changed names on it and hands the touched streams back to the server,
// which flushes them. Nothing here walks every stream: a change of one name
// costs one lookup and one mark per watch of that name, plus one notification per
// wildcard watch of its type.
import type { SnapshotEntry } from './snapshot.js';

/** The stream side of a watch: what the cache calls on a change. */
export interface Watcher {
  /** The stream id (the server finds its stream entry by it). */
  readonly id: number;
  /** A commit changed `names` (the commit's list for this type, shared: do not modify) and `watch` is a wildcard one. */
  notifyWildcard(watch: TypeWatch, names: readonly string[]): void;
}

/** One stream's subscription to one type. */
export interface TypeWatch {
  readonly typeUrl: string;
  readonly stream: Watcher;
  /** Subscribed names whose entry changed since the stream last flushed (the stream clears it). */
  readonly dirty: Set<string>;
}

/** What a stream reads from the cache and how it subscribes (implemented by SnapshotCache). */
export interface StreamCache {
  /** False until the first complete state: requests are held, not answered. */
  readonly ready: boolean;
  /** version_info / system_version_info of a type's responses. */
  typeVersion(typeUrl: string): string;
  /** The entry a name stands for now (server listeners come from the callback). */
  resolve(typeUrl: string, name: string): SnapshotEntry | undefined;
  /** Names served by the server-listener callback; never part of a wildcard. */
  isServerListener(typeUrl: string, name: string): boolean;
  /** Every cached name of a type (not server listeners). */
  names(typeUrl: string): IterableIterator<string>;
  count(typeUrl: string): number;
  /** Every cached resource of a type as one buffer of `resources` fields (SotW wildcard; built once per type version). */
  wildcardFrames(typeUrl: string): Buffer;
  subscribe(watch: TypeWatch, name: string): void;
  unsubscribe(watch: TypeWatch, name: string): void;
  setWildcard(watch: TypeWatch, on: boolean): void;
}

/** Reverse index: which stream types a change of (type, name) concerns. */
export class SubscriptionIndex {
  private readonly named = new Map<string, Map<string, Set<TypeWatch>>>();
  private readonly wild = new Map<string, Set<TypeWatch>>();

  add(watch: TypeWatch, name: string): void {
    let byName = this.named.get(watch.typeUrl);
    if (!byName) this.named.set(watch.typeUrl, (byName = new Map()));
    let set = byName.get(name);
    if (!set) byName.set(name, (set = new Set()));
    set.add(watch);
  }

  /** Returns true when nobody subscribes to the name any more. */
  remove(watch: TypeWatch, name: string): boolean {
    const byName = this.named.get(watch.typeUrl);
    const set = byName?.get(name);
    if (!set) return true;
    set.delete(watch);
    if (set.size > 0) return false;
    byName!.delete(name);
    return true;
  }

  setWildcard(watch: TypeWatch, on: boolean): void {
    let set = this.wild.get(watch.typeUrl);
    if (!set) this.wild.set(watch.typeUrl, (set = new Set()));
    if (on) set.add(watch);
    else set.delete(watch);
  }

  subscribers(typeUrl: string, name: string): ReadonlySet<TypeWatch> | undefined {
    return this.named.get(typeUrl)?.get(name);
  }

  wildcards(typeUrl: string): ReadonlySet<TypeWatch> | undefined {
    return this.wild.get(typeUrl);
  }

  /**
   * Marks a commit's changed names (type -> names) on the watches of those names
   * and notifies the wildcard watches of their types. `wildcardNames` gives the
   * part of a type's list a wildcard covers (the list itself when it covers all of
   * it, so it stays shared). Returns the streams touched, in the order first touched.
   */
  mark(changed: ReadonlyMap<string, string[]>, wildcardNames: (typeUrl: string, names: string[]) => readonly string[]): Set<Watcher> {
    const touched = new Set<Watcher>();
    for (const [typeUrl, names] of changed) {
      const byName = this.named.get(typeUrl);
      if (byName) {
        for (const name of names) {
          const subs = byName.get(name);
          if (!subs) continue;
          for (const watch of subs) {
            watch.dirty.add(name);
            touched.add(watch.stream);
          }
        }
      }
      const wild = this.wild.get(typeUrl);
      if (wild && wild.size > 0) {
        const list = wildcardNames(typeUrl, names);
        if (list.length === 0) continue;
        for (const watch of wild) {
          watch.stream.notifyWildcard(watch, list);
          touched.add(watch.stream);
        }
      }
    }
    return touched;
  }
}
