// The snapshot cache (go-control-plane's pkg/cache/v3): the layer between the
// owner's changes and the streams. It owns
// - the versioned store (snapshot.ts): immutable entries, each resource encoded
//   once and its bytes shared by every stream and response;
// - batching (batcher.ts): calls coalesce into one pending batch;
// - commit: a due batch becomes one new version, synchronously, so a stream
//   reading the cache (now or when its blocked write drains) sees all of a batch
//   or none of it;
// - the subscription index (subscriptions.ts): a commit marks the changed names on
//   the watches of those names (and on wildcard ones) and hands only the touched
//   streams to the server (onChange), which flushes them;
// - readiness: nothing is answered before the first complete state
//   (setResources/markReady; applyChanges alone does not make it ready): an empty
//   answer deletes every listener and cluster on reconnecting clients
//   (xds-field-notes.md). Becoming ready gives every type a version and lets every
//   stream answer (onReady);
// - server listeners (server-listeners.ts), served by name next to the store.
// It knows nothing of gRPC or of the protocols: streams read it through
// StreamCache and are told about changes through their watches.
import { performance } from 'node:perf_hooks';
import { LISTENER_TYPE, RESOURCE_TYPES, type XdsResources } from '../../xdsapi/index.js';
import { ChangeBatcher, type ResourceChange } from './batcher.js';
import { ServerListeners, type ServerListenerCallback } from './server-listeners.js';
import { ResourceCache, type SnapshotEntry, type SnapshotView } from './snapshot.js';
import { SubscriptionIndex, type StreamCache, type TypeWatch, type Watcher } from './subscriptions.js';

export interface SnapshotCacheOptions {
  serverListener?: ServerListenerCallback;
  debounceMs: number;
  maxDelayMs: number;
  debug: boolean;
  log: (msg: string) => void;
  /** The cache became ready: every stream may answer now. */
  onReady: (version: string) => void;
  /** A commit changed what these streams watch: flush them (in this order). */
  onChange: (touched: Set<Watcher>) => void;
}

export interface CommitCounters {
  /** Commits that changed something (or became ready), i.e. pushes to the affected streams. */
  pushes: number;
  /** Duration of the last commit and push (synchronous part), ms. */
  lastPushMs: number;
  /** Names changed by the last commit. */
  lastPushChanged: number;
}

export class SnapshotCache implements StreamCache {
  private readonly store: ResourceCache;
  private readonly index = new SubscriptionIndex();
  private readonly batcher: ChangeBatcher;
  private readonly serverListeners: ServerListeners;
  private isReady = false;
  readonly counters: CommitCounters = { pushes: 0, lastPushMs: 0, lastPushChanged: 0 };
  /** Wildcard watches never cover server listeners. */
  private readonly wildcardNames = (typeUrl: string, names: string[]): readonly string[] =>
    typeUrl === LISTENER_TYPE && this.serverListeners.enabled ? names.filter((n) => !this.serverListeners.is(typeUrl, n)) : names;

  constructor(private readonly opts: SnapshotCacheOptions) {
    this.store = new ResourceCache(opts.debug);
    this.serverListeners = new ServerListeners(opts.serverListener, this.store, opts.log);
    this.batcher = new ChangeBatcher(this.store, opts, () => this.commit(false));
  }

  // --- changes -------------------------------------------------------------

  /** Replaces the whole resource set (diffed, then as applyChanges). The first call makes the cache ready at once. */
  setResources(res: XdsResources): void {
    this.batcher.setAll(res);
    if (!this.isReady) return this.commit(true);
    this.batcher.schedule();
  }

  /** Adds, replaces and removes single resources; does not make the cache ready nor re-evaluate server listeners. */
  applyChanges(change: ResourceChange): void {
    this.batcher.apply(change);
    this.batcher.schedule();
  }

  /** Declares the state complete: pending changes go out with it. */
  markReady(): void {
    if (!this.isReady) this.commit(true);
  }

  /** Asks the server-listener callback again for every name in use, at the next commit. */
  refreshServerListeners(): void {
    this.batcher.requestRefresh();
    this.batcher.schedule();
  }

  /** Commits the pending batch now instead of at the end of the coalescing window. */
  flush(): void {
    if (this.batcher.hasPending) this.commit(false);
  }

  /** Stops the coalescing timer. */
  close(): void {
    this.batcher.cancel();
  }

  /** Installs the pending batch as one version and hands the affected streams to the server. */
  private commit(makeReady: boolean): void {
    const t0 = performance.now();
    const { batch, refresh } = this.batcher.take();
    const changed = this.store.commit(batch);
    if (refresh) {
      const sl = this.serverListeners.reevaluate();
      if (sl.length > 0) {
        this.store.touch(LISTENER_TYPE);
        changed.set(LISTENER_TYPE, [...(changed.get(LISTENER_TYPE) ?? []), ...sl]);
      }
    }
    let n = 0;
    for (const names of changed.values()) n += names.length;
    if (makeReady && !this.isReady) {
      this.isReady = true;
      // Every type gets a version: the first answers carry this one.
      for (const t of RESOURCE_TYPES) this.store.touch(t);
      this.opts.onReady(this.store.version);
      this.counters.pushes++;
    } else if (this.isReady && n > 0) {
      this.opts.onChange(this.index.mark(changed, this.wildcardNames));
      this.counters.pushes++;
    }
    this.counters.lastPushMs = performance.now() - t0;
    this.counters.lastPushChanged = n;
  }

  // --- state ---------------------------------------------------------------

  get ready(): boolean {
    return this.isReady;
  }

  /** The store (a live read-only view), whether ready or not. */
  get snapshot(): SnapshotView {
    return this.store;
  }

  /** Cache version: commits so far. */
  get version(): string {
    return this.store.version;
  }

  typeVersion(typeUrl: string): string {
    return this.store.typeVersion(typeUrl);
  }

  typeVersionsRecord(): Record<string, string> {
    return this.store.typeVersionsRecord();
  }

  count(typeUrl: string): number {
    return this.store.count(typeUrl);
  }

  names(typeUrl: string): IterableIterator<string> {
    return this.store.names(typeUrl);
  }

  wildcardFrames(typeUrl: string): Buffer {
    return this.store.wildcardFrames(typeUrl);
  }

  /** Resources encoded so far (unchanged content is never encoded again). */
  get encodes(): number {
    return this.store.encodes;
  }

  /** Encoded resources held: the store plus server listeners. */
  get cachedEncodings(): number {
    return this.store.size + this.serverListeners.size;
  }

  get changesReceived(): number {
    return this.batcher.changesReceived;
  }

  get changesCoalesced(): number {
    return this.batcher.changesCoalesced;
  }

  get pendingNames(): number {
    return this.batcher.pendingNames;
  }

  // --- what streams read and watch ------------------------------------------

  isServerListener(typeUrl: string, name: string): boolean {
    return this.serverListeners.is(typeUrl, name);
  }

  resolve(typeUrl: string, name: string): SnapshotEntry | undefined {
    return this.serverListeners.is(typeUrl, name) ? this.serverListeners.get(name) : this.store.get(typeUrl, name);
  }

  subscribe(watch: TypeWatch, name: string): void {
    this.index.add(watch, name);
  }

  unsubscribe(watch: TypeWatch, name: string): void {
    if (this.index.remove(watch, name) && this.serverListeners.is(watch.typeUrl, name)) this.serverListeners.drop(name);
  }

  setWildcard(watch: TypeWatch, on: boolean): void {
    this.index.setWildcard(watch, on);
  }
}
