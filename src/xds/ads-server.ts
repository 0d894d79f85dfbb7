// ADS server (envoy.service.discovery.v3.AggregatedDiscoveryService), state of the
// world (sotw.ts) and incremental (delta.ts), for proxyless gRPC and Envoy, all
// served from one ResourceCache (snapshot.ts).
//
// A change goes: applyChanges/setResources -> encode only what changed (throws
// before anything moves) -> pending batch (coalesced for debounceMs, at most
// maxDelayMs) -> commit: one new version, per-type versions bumped -> the reverse
// index names the stream types subscribed to a changed name (plus wildcard ones)
// -> only those flush. Nothing walks every stream or every resource per change.
//
// Nothing is answered before the first complete state (setResources/markReady):
// an empty answer deletes every listener and cluster on reconnecting clients
// (xds-field-notes.md).
import * as grpc from '@grpc/grpc-js';
import { performance } from 'node:perf_hooks';
import { DeltaStream } from './delta.js';
import { adsServiceDefinition, protoRoot } from './proto.js';
import { ResourceCache, shortType, type CacheBatch, type CacheOp, type SnapshotEntry, type SnapshotView } from './snapshot.js';
import { SotwStream } from './sotw.js';
import { SubscriptionIndex, type AdsEvent, type ProxyStatus, type ResponseCall, type StreamHost, type XdsProtocol, type XdsStream } from './streams.js';
import { SERVER_LISTENER_PREFIX, LISTENER_TYPE, RESOURCE_TYPES, mapFor, type XdsResource, type XdsResources } from '../xdsapi/index.js';

export type { AdsEvent, ProxyStatus, ProxyTypeStatus, XdsProtocol } from './streams.js';

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

/** An incremental update: resources to add or replace, names to remove. */
export interface ResourceChange {
  upserts: XdsResource[];
  removals: { typeUrl: string; name: string }[];
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

interface StreamEntry {
  stream: XdsStream;
  /** Ends the stream after an internal error, without taking the server down. */
  fail: (err: unknown) => void;
}

let serviceDefinition: grpc.ServiceDefinition | undefined;
function adsService(): grpc.ServiceDefinition {
  if (!serviceDefinition) {
    const def = adsServiceDefinition();
    // Responses are written already encoded (wire.ts), so serializing is the identity.
    const out: Record<string, grpc.MethodDefinition<unknown, Buffer>> = {};
    for (const [name, m] of Object.entries(def)) out[name] = { ...(m as grpc.MethodDefinition<unknown, Buffer>), responseSerialize: (b: Buffer) => b };
    serviceDefinition = out as grpc.ServiceDefinition;
  }
  return serviceDefinition;
}

export class AdsServer {
  private readonly opts: AdsServerOptions;
  private readonly debug: boolean;
  private readonly debounceMs: number;
  private readonly maxDelayMs: number;
  private readonly cache: ResourceCache;
  private readonly index = new SubscriptionIndex();
  private readonly host: StreamHost;
  private isReady = false;
  /** Changes not committed yet (last op per name wins). */
  private pending: CacheBatch = new Map();
  private pendingCalls = 0;
  /** A setResources is pending: commit (new version) even if nothing changed. */
  private pendingCommit = false;
  /** Server listeners must be re-evaluated at the next commit. */
  private pendingRefresh = false;
  private firstPendingAt: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private nonceCounter = 0;
  private streamCounter = 0;
  private readonly streams = new Map<number, StreamEntry>();
  /** Server listeners by name, built on first subscription (undefined = the callback returned none). */
  private readonly serverListeners = new Map<string, SnapshotEntry | undefined>();
  private server: grpc.Server | undefined;
  private readonly counters = { pushes: 0, responses: 0, changesReceived: 0, changesCoalesced: 0, lastPushMs: 0, lastPushChanged: 0 };

  constructor(opts: AdsServerOptions = {}) {
    this.opts = opts;
    this.debug = opts.debug ?? process.env.MESHFED_XDS_DEBUG === '1';
    this.debounceMs = Math.max(0, opts.debounceMs ?? 0);
    this.maxDelayMs = Math.max(0, opts.maxDelayMs ?? 100);
    this.cache = new ResourceCache(this.debug);
    const self = this;
    this.host = {
      get ready() {
        return self.isReady;
      },
      cache: this.cache,
      resolve: (t, n) => this.resolve(t, n),
      isServerListener: (t, n) => this.isServerListener(t, n),
      subscribe: (st, n) => this.index.add(st, n),
      unsubscribe: (st, n) => {
        if (this.index.remove(st, n) && this.isServerListener(st.typeUrl, n)) this.serverListeners.delete(n);
      },
      setWildcard: (st, on) => this.index.setWildcard(st, on),
      nextNonce: (stream) => `${stream}-${++this.nonceCounter}`,
      responded: () => void this.counters.responses++,
      observed: opts.onEvent !== undefined,
      emit: (e) => this.emit(e),
      log: (m) => this.log(m),
    };
  }

  /** True once the first complete state is in: requests are answered from then on. */
  get ready(): boolean {
    return this.isReady;
  }

  /** Cache version (undefined before ready). */
  get version(): string | undefined {
    return this.isReady ? this.cache.version : undefined;
  }

  /** Version of a type: version_info / system_version_info of its responses. */
  typeVersion(typeUrl: string): string | undefined {
    return this.isReady ? this.cache.typeVersion(typeUrl) : undefined;
  }

  /**
   * Replaces the whole resource set: the difference to the current (and pending)
   * state goes through applyChanges' path. Throws on an invalid resource before
   * anything changes. The first call makes the server ready at once.
   */
  setResources(res: XdsResources): void {
    const ops = this.diff(res);
    this.enqueue(ops);
    this.pendingCommit = true;
    this.pendingRefresh = true;
    if (!this.isReady) return this.commit(true);
    this.schedule();
  }

  /**
   * Adds, replaces and removes single resources; only what changed is encoded and
   * pushed, only to streams subscribed to a changed name (and wildcard ones).
   * Throws on an invalid resource or unknown type before anything changes.
   * Does not make the server ready (see markReady) and does not re-evaluate server
   * listeners (see refreshServerListeners).
   */
  applyChanges(change: ResourceChange): void {
    const ops = this.prepareChanges(change);
    this.enqueue(ops);
    this.schedule();
  }

  /** Declares the state complete (e.g. after the first applyChanges, or an agent with no services): pending changes go out with it. */
  markReady(): void {
    if (!this.isReady) this.commit(true);
  }

  /** Asks the server-listener callback again for every name in use, at the next commit. */
  refreshServerListeners(): void {
    this.pendingRefresh = true;
    this.pendingCommit = true;
    this.schedule();
  }

  /** Pushes the pending batch now instead of at the end of the coalescing window. */
  flush(): void {
    if (this.pendingCalls > 0 || this.pendingCommit || this.pendingRefresh) this.commit(false);
  }

  stats(): AdsStats {
    let sotw = 0;
    for (const { stream } of this.streams.values()) if (stream.protocol === 'sotw') sotw++;
    let pendingNames = 0;
    for (const m of this.pending.values()) pendingNames += m.size;
    const s: AdsStats = {
      streams: this.streams.size,
      sotwStreams: sotw,
      deltaStreams: this.streams.size - sotw,
      ready: this.isReady,
      typeVersions: this.isReady ? this.cache.typeVersionsRecord() : {},
      resources: Object.fromEntries(RESOURCE_TYPES.map((t) => [t, this.cache.count(t)])),
      encodes: this.cache.encodes,
      cachedEncodings: this.cache.size + this.serverListeners.size,
      ...this.counters,
      pendingNames,
      debounceMs: this.debounceMs,
      maxDelayMs: this.maxDelayMs,
    };
    if (this.isReady) s.version = this.cache.version;
    return s;
  }

  /** The current state (a live read-only view; undefined before ready). */
  currentSnapshot(): SnapshotView | undefined {
    return this.isReady ? this.cache : undefined;
  }

  /** Binds (loopback by default: the proxyless clients' channel to us is plaintext). Returns the port. */
  async listen(host = '127.0.0.1', port = 0): Promise<number> {
    if (this.server) throw new Error('AdsServer is already listening');
    // Load the protos now rather than inside the first setResources (~0.1 s).
    protoRoot();
    const server = new grpc.Server({
      // ADS streams live for the life of the proxy; keep them from idling out behind NATs.
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
    });
    server.addService(adsService(), {
      StreamAggregatedResources: (call: ResponseCall) => this.handleStream(call, 'sotw'),
      DeltaAggregatedResources: (call: ResponseCall) => this.handleStream(call, 'delta'),
    });
    this.server = server;
    const addr = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
    return new Promise((resolve, reject) => {
      server.bindAsync(addr, grpc.ServerCredentials.createInsecure(), (err, bound) => {
        if (!err) return resolve(bound);
        server.forceShutdown();
        this.server = undefined;
        reject(err);
      });
    });
  }

  /** Stops at once: every stream is cancelled (proxies keep their cached config and reconnect). */
  async close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    for (const { stream } of this.streams.values()) stream.dispose();
    this.streams.clear();
    this.server?.forceShutdown();
    this.server = undefined;
  }

  proxies(): ProxyStatus[] {
    return [...this.streams.values()].map(({ stream }) => stream.status());
  }

  // --- changes -------------------------------------------------------------

  /** The op batch that turns the current (pending included) state into `res`. */
  private diff(res: XdsResources): CacheBatch {
    const ops: CacheBatch = new Map();
    for (const typeUrl of RESOURCE_TYPES) {
      const target = mapFor(res, typeUrl);
      const pend = this.pending.get(typeUrl);
      const m = new Map<string, CacheOp>();
      for (const [name, r] of target) {
        if (r.typeUrl !== typeUrl || r.name !== name) {
          throw new Error(`resource ${r.name} (${r.typeUrl}) is filed under ${name} in the ${typeUrl} map`);
        }
        const cur = this.cache.get(typeUrl, name);
        const p = pend?.get(name);
        const effective = pend?.has(name) ? p : cur;
        const e = this.cache.prepare(r, p, cur);
        if (e !== effective) m.set(name, e);
      }
      for (const name of this.cache.names(typeUrl)) {
        if (!target.has(name) && (!pend?.has(name) || pend.get(name))) m.set(name, null);
      }
      if (pend) for (const [name, op] of pend) if (op && !target.has(name)) m.set(name, null);
      if (m.size > 0) ops.set(typeUrl, m);
    }
    return ops;
  }

  private prepareChanges(change: ResourceChange): CacheBatch {
    const ops: CacheBatch = new Map();
    const opsFor = (typeUrl: string): Map<string, CacheOp> => {
      if (!this.cache.has(typeUrl)) throw new Error(`unknown xDS resource type ${typeUrl}`);
      let m = ops.get(typeUrl);
      if (!m) ops.set(typeUrl, (m = new Map()));
      return m;
    };
    /** type\0name -> hash of its first upsert in this call. */
    const seen = new Map<string, string>();
    for (const r of change.upserts) {
      const m = opsFor(r.typeUrl);
      const key = `${r.typeUrl}\u0000${r.name}`;
      const pend = this.pending.get(r.typeUrl);
      const cur = this.cache.get(r.typeUrl, r.name);
      const p = pend?.get(r.name);
      const e = this.cache.prepare(r, m.get(r.name), p, cur);
      const first = seen.get(key);
      if (first !== undefined && first !== e.hash) {
        const msg = `${shortType(r.typeUrl)} "${r.name}" is upserted twice in one change with different content (hash ${first} vs ${e.hash})`;
        if (this.debug) throw new Error(`xDS debug: ${msg}`);
        this.log(`${msg}; the last one wins`);
      }
      if (first === undefined) seen.set(key, e.hash);
      const effective = pend?.has(r.name) ? p : cur;
      if (e !== effective) m.set(r.name, e);
      else m.delete(r.name); // restates the current content (possibly after an earlier upsert in this call)
    }
    for (const { typeUrl, name } of change.removals) {
      const m = opsFor(typeUrl);
      const pend = this.pending.get(typeUrl);
      const exists = pend?.has(name) ? pend.get(name) : this.cache.get(typeUrl, name);
      if (exists) m.set(name, null);
      else m.delete(name);
    }
    for (const [t, m] of ops) if (m.size === 0) ops.delete(t);
    return ops;
  }

  /** Merges ops into the pending batch: a later op on a name replaces an earlier one. */
  private enqueue(ops: CacheBatch): void {
    this.counters.changesReceived++;
    if (this.pendingCalls > 0) this.counters.changesCoalesced++;
    this.pendingCalls++;
    for (const [typeUrl, m] of ops) {
      let p = this.pending.get(typeUrl);
      if (!p) this.pending.set(typeUrl, (p = new Map()));
      for (const [name, op] of m) p.set(name, op);
    }
  }

  /** Commits now (debounceMs 0) or at the end of the window, never later than maxDelayMs after the first pending change. */
  private schedule(): void {
    if (this.debounceMs === 0) return this.commit(false);
    const now = performance.now();
    if (this.firstPendingAt === undefined) this.firstPendingAt = now;
    const at = Math.min(now + this.debounceMs, this.firstPendingAt + this.maxDelayMs);
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.commit(false), Math.max(0, at - now));
    // Pending pushes alone must not keep a process alive (open streams do).
    this.timer.unref();
  }

  /** Installs the pending batch as one version and pushes it to the affected streams. */
  private commit(makeReady: boolean): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const t0 = performance.now();
    const batch = this.pending;
    const refresh = this.pendingRefresh;
    this.pending = new Map();
    this.pendingCalls = 0;
    this.pendingCommit = false;
    this.pendingRefresh = false;
    this.firstPendingAt = undefined;
    const changed = this.cache.commit(batch);
    if (refresh) {
      const sl = this.reevaluateServerListeners();
      if (sl.length > 0) {
        this.cache.touch(LISTENER_TYPE);
        changed.set(LISTENER_TYPE, [...(changed.get(LISTENER_TYPE) ?? []), ...sl]);
      }
    }
    let n = 0;
    for (const names of changed.values()) n += names.length;
    if (makeReady && !this.isReady) {
      this.isReady = true;
      // Every type gets a version: the first answers carry this one.
      for (const t of RESOURCE_TYPES) this.cache.touch(t);
      this.log(`ready with version ${this.cache.version}; answering ${this.streams.size} waiting stream(s)`);
      for (const e of this.streams.values()) this.flushStream(e);
      this.counters.pushes++;
    } else if (this.isReady && n > 0) {
      this.push(changed);
      this.counters.pushes++;
    }
    this.counters.lastPushMs = performance.now() - t0;
    this.counters.lastPushChanged = n;
  }

  /** Marks the changed names on the stream types subscribed to them, then flushes those streams. */
  private push(changed: Map<string, string[]>): void {
    const touched = new Set<XdsStream>();
    for (const [typeUrl, names] of changed) {
      for (const name of names) {
        const subs = this.index.subscribers(typeUrl, name);
        if (!subs) continue;
        for (const st of subs) {
          st.dirty.add(name);
          touched.add(st.stream);
        }
      }
      const wild = this.index.wildcards(typeUrl);
      if (wild && wild.size > 0) {
        const list = typeUrl === LISTENER_TYPE && this.opts.serverListener ? names.filter((n) => !this.isServerListener(typeUrl, n)) : names;
        if (list.length === 0) continue;
        for (const st of wild) {
          st.stream.notifyWildcard(st, list);
          touched.add(st.stream);
        }
      }
    }
    for (const s of touched) {
      const e = this.streams.get(s.id);
      if (e) this.flushStream(e);
    }
  }

  private flushStream(e: StreamEntry): void {
    try {
      e.stream.flushAll();
    } catch (err) {
      e.fail(err);
    }
  }

  // --- server listeners ----------------------------------------------------

  private isServerListener(typeUrl: string, name: string): boolean {
    return typeUrl === LISTENER_TYPE && this.opts.serverListener !== undefined && name.startsWith(SERVER_LISTENER_PREFIX);
  }

  private resolve(typeUrl: string, name: string): SnapshotEntry | undefined {
    return this.isServerListener(typeUrl, name) ? this.serverListener(name) : this.cache.get(typeUrl, name);
  }

  private serverListener(name: string): SnapshotEntry | undefined {
    if (this.serverListeners.has(name)) return this.serverListeners.get(name);
    const entry = this.buildServerListener(name, undefined);
    this.serverListeners.set(name, entry);
    return entry;
  }

  private buildServerListener(name: string, old: SnapshotEntry | undefined): SnapshotEntry | undefined {
    const r = this.opts.serverListener?.(name);
    if (!r) return undefined;
    try {
      return this.cache.prepare(r, old);
    } catch (err) {
      this.log(`server listener ${name}: ${(err as Error).message}`);
      return undefined;
    }
  }

  /** Asks the callback again for every server listener in use; returns the names whose content changed. */
  private reevaluateServerListeners(): string[] {
    const changed: string[] = [];
    for (const [name, old] of this.serverListeners) {
      const e = this.buildServerListener(name, old);
      if (e?.hash !== old?.hash) {
        this.serverListeners.set(name, e);
        changed.push(name);
      }
    }
    return changed;
  }

  // --- streams -------------------------------------------------------------

  private handleStream(call: ResponseCall, protocol: XdsProtocol): void {
    const id = ++this.streamCounter;
    const s: XdsStream = protocol === 'sotw' ? new SotwStream(id, call, call.getPeer(), this.host) : new DeltaStream(id, call, call.getPeer(), this.host);
    const done = (why: string): void => {
      if (s.closed) return;
      s.dispose();
      this.streams.delete(id);
      this.log(`stream ${id} (${protocol}, ${s.node?.id ?? s.peer}) closed: ${why}`);
      this.emit({ kind: 'disconnect', stream: id, nodeId: s.node?.id ?? '', protocol });
    };
    const fail = (err: unknown): void => {
      // A bug here must not take the whole control plane down; drop this stream only.
      this.log(`stream ${id}: ${(err as Error).stack ?? String(err)}`);
      call.emit('error', { code: grpc.status.INTERNAL, details: (err as Error).message });
      done('internal error');
    };
    this.streams.set(id, { stream: s, fail });
    call.on('data', (req: unknown) => {
      try {
        s.handle(req);
      } catch (err) {
        fail(err);
      }
    });
    call.on('end', () => {
      call.end();
      done('client ended the stream');
    });
    call.on('error', (err: Error) => done(err.message));
    call.on('cancelled', () => done('cancelled'));
    call.on('close', () => done('closed'));
    call.on('drain', () => {
      try {
        s.onDrain();
      } catch (err) {
        fail(err);
      }
    });
  }

  private log(msg: string): void {
    this.opts.log?.(msg);
  }

  private emit(e: AdsEvent): void {
    this.opts.onEvent?.(e);
  }
}
