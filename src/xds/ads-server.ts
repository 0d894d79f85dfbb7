// AdsServer: the facade the agent uses, over the two layers of xDS serving (the
// split go-control-plane makes between pkg/cache/v3 and pkg/server):
// - cache/: the snapshot cache. Changes are encoded once (throwing before anything
//   moves), coalesced into a pending batch (debounceMs, at most maxDelayMs),
//   committed as one new immutable version whose bytes every stream shares, and
//   the subscription index names the streams a commit concerns. It also holds
//   readiness: nothing is answered before the first complete state
//   (setResources/markReady), since an empty answer deletes every listener and
//   cluster on reconnecting clients (xds-field-notes.md).
// - server/: the transport. The gRPC ADS service, SotW and delta stream state
//   machines reading the cache, NACK detection, proxy status.
// This file only wires them together (the cache tells the service which streams
// to flush) and keeps the public API and stats. Nothing walks every stream or
// every resource per change.
import { SnapshotCache } from './cache/snapshot-cache.js';
import type { ResourceChange } from './cache/batcher.js';
import type { SnapshotView } from './cache/snapshot.js';
import { AdsService } from './server/ads-service.js';
import type { AdsEvent, ProxyStatus } from './server/streams.js';
import { RESOURCE_TYPES, type XdsResource, type XdsResources } from '../xdsapi/index.js';

export type { AdsEvent, ProxyStatus, ProxyTypeStatus, XdsProtocol } from './server/streams.js';
export type { ResourceChange } from './cache/batcher.js';

export interface AdsServerOptions {
  /** Builds the Listener a gRPC server asks for (names starting with SERVER_LISTENER_PREFIX). */
  serverListener?: (name: string) => XdsResource | undefined;
  log?: (msg: string) => void;
  /** Every protocol event, for tests and metrics. */
  onEvent?: (e: AdsEvent) => void;
  /** Changes arriving within this many ms of each other are pushed together (default 0: at once). */
  debounceMs?: number;
  /** A pending change is pushed at most this many ms after it arrived, however busy (default 100). */
  maxDelayMs?: number;
  /**
   * Fail loudly (throw) when one cache key gets different content within one
   * version: the same name twice in one applyChanges with different content, or
   * a content hash whose cached bytes differ from a fresh encoding. Default: env
   * MESHFED_XDS_DEBUG=1. Costs a re-encode of every unchanged upsert.
   */
  debug?: boolean;
}

export interface AdsStats {
  streams: number;
  sotwStreams: number;
  deltaStreams: number;
  ready: boolean;
  /** Cache version (commits so far). */
  version?: string;
  /** Type URL -> version of its last change. */
  typeVersions: Record<string, string>;
  /** Type URL -> resources in the cache. */
  resources: Record<string, number>;
  /** Resources encoded so far (unchanged content is never encoded again). */
  encodes: number;
  /** Encoded resources held (the cache plus server listeners). */
  cachedEncodings: number;
  /** Commits that changed something (or became ready), i.e. pushes to the affected streams. */
  pushes: number;
  /** Responses written, all streams. */
  responses: number;
  /** setResources/applyChanges calls. */
  changesReceived: number;
  /** Of those, calls merged into a batch that was already pending. */
  changesCoalesced: number;
  /** Names waiting in the pending batch. */
  pendingNames: number;
  /** Duration of the last commit and push (synchronous part), ms. */
  lastPushMs: number;
  /** Names changed by the last commit. */
  lastPushChanged: number;
  debounceMs: number;
  maxDelayMs: number;
}

export class AdsServer {
  private readonly debounceMs: number;
  private readonly maxDelayMs: number;
  private readonly cache: SnapshotCache;
  private readonly service: AdsService;

  constructor(opts: AdsServerOptions = {}) {
    this.debounceMs = Math.max(0, opts.debounceMs ?? 0);
    this.maxDelayMs = Math.max(0, opts.maxDelayMs ?? 100);
    const log = (msg: string): void => opts.log?.(msg);
    this.cache = new SnapshotCache({
      debounceMs: this.debounceMs,
      maxDelayMs: this.maxDelayMs,
      debug: opts.debug ?? process.env.MESHFED_XDS_DEBUG === '1',
      log,
      ...(opts.serverListener ? { serverListener: opts.serverListener } : {}),
      onReady: (version) => this.service.flushAll(version),
      onChange: (touched) => this.service.flush(touched),
    });
    this.service = new AdsService(this.cache, { log, ...(opts.onEvent ? { onEvent: opts.onEvent } : {}) });
  }

  /** True once the first complete state is in: requests are answered from then on. */
  get ready(): boolean {
    return this.cache.ready;
  }

  /** Cache version (undefined before ready). */
  get version(): string | undefined {
    return this.cache.ready ? this.cache.version : undefined;
  }

  /** Version of a type: version_info / system_version_info of its responses. */
  typeVersion(typeUrl: string): string | undefined {
    return this.cache.ready ? this.cache.typeVersion(typeUrl) : undefined;
  }

  /**
   * Replaces the whole resource set: the difference to the current (and pending)
   * state goes through applyChanges' path. Throws on an invalid resource before
   * anything changes. The first call makes the server ready at once.
   */
  setResources(res: XdsResources): void {
    this.cache.setResources(res);
  }

  /**
   * Adds, replaces and removes single resources; only what changed is encoded and
   * pushed, only to streams subscribed to a changed name (and wildcard ones).
   * Throws on an invalid resource or unknown type before anything changes.
   * Does not make the server ready (see markReady) and does not re-evaluate server
   * listeners (see refreshServerListeners).
   */
  applyChanges(change: ResourceChange): void {
    this.cache.applyChanges(change);
  }

  /** Declares the state complete (e.g. after the first applyChanges, or an agent with no services): pending changes go out with it. */
  markReady(): void {
    this.cache.markReady();
  }

  /** Asks the server-listener callback again for every name in use, at the next commit. */
  refreshServerListeners(): void {
    this.cache.refreshServerListeners();
  }

  /** Pushes the pending batch now instead of at the end of the coalescing window. */
  flush(): void {
    this.cache.flush();
  }

  stats(): AdsStats {
    const cache = this.cache;
    const { streams, sotw } = this.service.streamCounts();
    const s: AdsStats = {
      streams,
      sotwStreams: sotw,
      deltaStreams: streams - sotw,
      ready: cache.ready,
      typeVersions: cache.ready ? cache.typeVersionsRecord() : {},
      resources: Object.fromEntries(RESOURCE_TYPES.map((t) => [t, cache.count(t)])),
      encodes: cache.encodes,
      cachedEncodings: cache.cachedEncodings,
      pushes: cache.counters.pushes,
      responses: this.service.responses,
      changesReceived: cache.changesReceived,
      changesCoalesced: cache.changesCoalesced,
      lastPushMs: cache.counters.lastPushMs,
      lastPushChanged: cache.counters.lastPushChanged,
      pendingNames: cache.pendingNames,
      debounceMs: this.debounceMs,
      maxDelayMs: this.maxDelayMs,
    };
    if (cache.ready) s.version = cache.version;
    return s;
  }

  /** The current state (a live read-only view; undefined before ready). */
  currentSnapshot(): SnapshotView | undefined {
    return this.cache.ready ? this.cache.snapshot : undefined;
  }

  /** Binds (loopback by default: the proxyless clients' channel to us is plaintext). Returns the port. */
  listen(host = '127.0.0.1', port = 0): Promise<number> {
    return this.service.listen(host, port);
  }

  /** Stops at once: every stream is cancelled (proxies keep their cached config and reconnect). */
  async close(): Promise<void> {
    this.cache.close();
    this.service.close();
  }

  proxies(): ProxyStatus[] {
    return this.service.proxies();
  }
}
