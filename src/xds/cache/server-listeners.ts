// Server listeners (`grpc/server?xds.resource.listening_address=IP:PORT`): the
// Listener a gRPC server asks for, built by the owner's callback rather than
// installed through changes. Served by exact name only (never part of a
// wildcard), built on a name's first subscription, dropped when its last
// subscriber goes, and asked for again only on refresh (setResources /
// refreshServerListeners), never on applyChanges. Entries are encoded through the
// store, so unchanged content is not encoded again.
import { errorMessage } from '../../util/errors.js';
import { LISTENER_TYPE, SERVER_LISTENER_PREFIX, type XdsResource } from '../../xdsapi/index.js';
import type { ResourceCache, SnapshotEntry } from './snapshot.js';

export type ServerListenerCallback = (name: string) => XdsResource | undefined;

export class ServerListeners {
  /** By name, built on first subscription (undefined = the callback returned none). */
  private readonly byName = new Map<string, SnapshotEntry | undefined>();

  constructor(
    private readonly callback: ServerListenerCallback | undefined,
    private readonly store: ResourceCache,
    private readonly log: (msg: string) => void,
  ) {}

  /** There is a callback: names with the prefix are server listeners. */
  get enabled(): boolean {
    return this.callback !== undefined;
  }

  /** Entries held (for stats). */
  get size(): number {
    return this.byName.size;
  }

  is(typeUrl: string, name: string): boolean {
    return typeUrl === LISTENER_TYPE && this.callback !== undefined && name.startsWith(SERVER_LISTENER_PREFIX);
  }

  /** The entry for a name, built on first use. */
  get(name: string): SnapshotEntry | undefined {
    if (this.byName.has(name)) return this.byName.get(name);
    const entry = this.build(name, undefined);
    this.byName.set(name, entry);
    return entry;
  }

  /** Nobody subscribes to the name any more. */
  drop(name: string): void {
    this.byName.delete(name);
  }

  /** Asks the callback again for every server listener in use; returns the names whose content changed. */
  reevaluate(): string[] {
    const changed: string[] = [];
    for (const [name, old] of this.byName) {
      const e = this.build(name, old);
      if (e?.hash !== old?.hash) {
        this.byName.set(name, e);
        changed.push(name);
      }
    }
    return changed;
  }

  private build(name: string, old: SnapshotEntry | undefined): SnapshotEntry | undefined {
    const r = this.callback?.(name);
    if (!r) return undefined;
    try {
      return this.store.prepare(r, old);
    } catch (err) {
      this.log(`server listener ${name}: ${errorMessage(err)}`);
      return undefined;
    }
  }
}
