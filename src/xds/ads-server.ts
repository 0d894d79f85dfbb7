// State-of-the-world ADS server (envoy.service.discovery.v3.AggregatedDiscoveryService)
// for proxyless gRPC (and Envoy). Holds one immutable Snapshot; each stream tracks,
// per type, the names it subscribed to and the hashes it was last sent, and gets
// a response only when that set changed or the client changed its names.
//
// Rules that come from how grpc-js-xds behaves (docs: xds-field-notes.md):
// - nothing is answered before the first complete snapshot: an empty answer
//   deletes every listener and cluster on reconnecting clients;
// - every change of a subscribed name set is answered, even if no resource changed;
// - NACKs are detected by error_detail on a request carrying the last nonce.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { SERVER_LISTENER_PREFIX } from '../federation/names.js';
import {
  CLUSTER_TYPE,
  ENDPOINT_TYPE,
  LISTENER_TYPE,
  RESOURCE_TYPES,
  ROUTE_TYPE,
  type XdsResource,
  type XdsResources,
} from '../translate/xds/types.js';
import { protoRoot, xdsIncludeDirs } from './proto.js';
import { ResourceEncoder, Snapshot, type SnapshotEntry } from './snapshot.js';

// Plain-object shapes of the discovery messages as proto-loader hands them over
// (keepCase, defaults, enums as strings).
interface Locality {
  region: string;
  zone: string;
  sub_zone: string;
}
interface NodeMessage {
  id: string;
  cluster: string;
  locality: Locality | null;
  user_agent_name: string;
  user_agent_version?: string;
}
interface DiscoveryRequest {
  version_info: string;
  node: NodeMessage | null;
  resource_names: string[];
  type_url: string;
  response_nonce: string;
  error_detail: { code: number; message: string } | null;
}
interface DiscoveryResponse {
  version_info: string;
  resources: SnapshotEntry['any'][];
  type_url: string;
  nonce: string;
}
type AdsCall = grpc.ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>;

export interface AdsServerOptions {
  /** Builds the Listener a gRPC server asks for (names starting with SERVER_LISTENER_PREFIX). */
  serverListener?: (name: string) => XdsResource | undefined;
  log?: (msg: string) => void;
  /** Every protocol event, for tests and metrics. */
  onEvent?: (e: AdsEvent) => void;
}

export type AdsEvent =
  | { kind: 'connect' | 'disconnect'; stream: number; nodeId: string }
  | { kind: 'send'; stream: number; nodeId: string; typeUrl: string; version: string; nonce: string; resources: number }
  | { kind: 'ack'; stream: number; nodeId: string; typeUrl: string; version: string }
  | { kind: 'nack'; stream: number; nodeId: string; typeUrl: string; version: string; message: string };

export interface ProxyTypeStatus {
  typeUrl: string;
  /** Names the proxy subscribed to (0 with wildcard). */
  subscribed: number;
  wildcard: boolean;
  /** Resources in the last response. */
  sentResources: number;
  lastSentVersion?: string;
  lastSentNonce?: string;
  lastSentAt?: string;
  ackedVersion?: string;
  lastAckAt?: string;
  lastNack?: { version: string; message: string; at: string };
}

export interface ProxyStatus {
  stream: number;
  nodeId: string;
  nodeCluster: string;
  locality: { region: string; zone: string; subZone: string };
  userAgent: string;
  peer: string;
  connectedSince: string;
  /** Keyed by type URL. */
  types: Record<string, ProxyTypeStatus>;
}

interface TypeState {
  names: Set<string>;
  wildcard: boolean;
  /** The client named resources at least once: a later empty list is not a wildcard. */
  everNamed: boolean;
  /** A request changed the name set (or was the first) and is not answered yet. */
  mustRespond: boolean;
  /** name -> hash of the last response; undefined until something was sent. */
  sent?: Map<string, string>;
  lastSentVersion?: string;
  lastSentNonce?: string;
  lastSentAt?: Date;
  /** Nonce of the last response the client answered (ACK or NACK). */
  answeredNonce?: string;
  ackedVersion?: string;
  lastAckAt?: Date;
  lastNack?: { version: string; message: string; at: Date };
}

interface Stream {
  id: number;
  call: AdsCall;
  peer: string;
  connectedAt: Date;
  node?: NodeMessage;
  types: Map<string, TypeState>;
  /** Write buffer full: skip writes until 'drain', then send the latest state of these types. */
  blocked: boolean;
  dirty: Set<string>;
  closed: boolean;
}

const KNOWN_TYPES = new Set<string>(RESOURCE_TYPES);
/** Types whose SotW responses must list every subscribed resource (missing = deleted). */
const FULL_STATE_TYPES = new Set<string>([LISTENER_TYPE, CLUSTER_TYPE]);
const SHORT: Record<string, string> = { [LISTENER_TYPE]: 'LDS', [ROUTE_TYPE]: 'RDS', [CLUSTER_TYPE]: 'CDS', [ENDPOINT_TYPE]: 'EDS' };

let serviceDefinition: grpc.ServiceDefinition | undefined;
function adsService(): grpc.ServiceDefinition {
  if (!serviceDefinition) {
    const pkg = protoLoader.loadSync('envoy/service/discovery/v3/ads.proto', {
      keepCase: true,
      longs: String,
      enums: String,
      defaults: true,
      oneofs: true,
      includeDirs: xdsIncludeDirs(),
    });
    // proto-loader's ServiceDefinition is structurally grpc-js's; the types come from two packages.
    serviceDefinition = pkg['envoy.service.discovery.v3.AggregatedDiscoveryService'] as unknown as grpc.ServiceDefinition;
  }
  return serviceDefinition;
}

export class AdsServer {
  private readonly opts: AdsServerOptions;
  private readonly encoder = new ResourceEncoder();
  private snapshot: Snapshot | undefined;
  private versionCounter = 0;
  private nonceCounter = 0;
  private streamCounter = 0;
  private readonly streams = new Map<number, Stream>();
  /** Server listeners built for the current snapshot (undefined = the callback returned none). */
  private serverListeners = new Map<string, SnapshotEntry | undefined>();
  private server: grpc.Server | undefined;

  constructor(opts: AdsServerOptions = {}) {
    this.opts = opts;
  }

  /** True once the first complete snapshot is in: requests are answered from then on. */
  get ready(): boolean {
    return this.snapshot !== undefined;
  }

  get version(): string | undefined {
    return this.snapshot?.version;
  }

  /** Replaces the whole resource set; pushes to each stream only what changed for its names. */
  setResources(res: XdsResources): void {
    // Throws (strict encoding) before anything changes: the previous snapshot stays.
    const snapshot = Snapshot.build(String(this.versionCounter + 1), res, this.encoder);
    this.versionCounter++;
    this.install(snapshot);
  }

  /** Declares the (so far empty) state complete, e.g. an agent whose cluster has no services. */
  markReady(): void {
    if (!this.snapshot) this.install(Snapshot.empty(String(++this.versionCounter)));
  }

  /** Encoder counters: resources encoded so far and encodings cached now. */
  stats(): { encodes: number; cachedEncodings: number; streams: number } {
    return { encodes: this.encoder.encodes, cachedEncodings: this.encoder.size, streams: this.streams.size };
  }

  /** The current snapshot (undefined before ready). */
  currentSnapshot(): Snapshot | undefined {
    return this.snapshot;
  }

  private install(snapshot: Snapshot): void {
    const first = !this.snapshot;
    this.snapshot = snapshot;
    // Server listeners depend on state the caller may have changed with this call.
    this.serverListeners = new Map();
    for (const s of this.streams.values()) for (const typeUrl of s.types.keys()) this.push(s, typeUrl);
    this.retainEncodings();
    if (first) this.log(`ready with version ${snapshot.version}; answering ${this.streams.size} waiting stream(s)`);
  }

  private retainEncodings(): void {
    const keep = this.snapshot?.hashes() ?? new Set<string>();
    for (const e of this.serverListeners.values()) if (e) keep.add(e.hash);
    this.encoder.retain(keep);
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
      StreamAggregatedResources: (call: AdsCall) => this.handleStream(call),
      DeltaAggregatedResources: (call: grpc.ServerDuplexStream<unknown, unknown>) => {
        call.emit('error', { code: grpc.status.UNIMPLEMENTED, details: 'incremental (delta) xDS is not supported; use state of the world' });
      },
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
    for (const s of this.streams.values()) s.closed = true;
    this.streams.clear();
    this.server?.forceShutdown();
    this.server = undefined;
  }

  proxies(): ProxyStatus[] {
    return [...this.streams.values()].map((s) => {
      const types: Record<string, ProxyTypeStatus> = {};
      for (const [typeUrl, st] of s.types) {
        const t: ProxyTypeStatus = { typeUrl, subscribed: st.names.size, wildcard: st.wildcard, sentResources: st.sent?.size ?? 0 };
        if (st.lastSentVersion !== undefined) t.lastSentVersion = st.lastSentVersion;
        if (st.lastSentNonce !== undefined) t.lastSentNonce = st.lastSentNonce;
        if (st.lastSentAt) t.lastSentAt = st.lastSentAt.toISOString();
        if (st.ackedVersion !== undefined) t.ackedVersion = st.ackedVersion;
        if (st.lastAckAt) t.lastAckAt = st.lastAckAt.toISOString();
        if (st.lastNack) t.lastNack = { ...st.lastNack, at: st.lastNack.at.toISOString() };
        types[typeUrl] = t;
      }
      const loc = s.node?.locality;
      return {
        stream: s.id,
        nodeId: s.node?.id ?? '',
        nodeCluster: s.node?.cluster ?? '',
        locality: { region: loc?.region ?? '', zone: loc?.zone ?? '', subZone: loc?.sub_zone ?? '' },
        userAgent: [s.node?.user_agent_name, s.node?.user_agent_version].filter(Boolean).join(' '),
        peer: s.peer,
        connectedSince: s.connectedAt.toISOString(),
        types,
      };
    });
  }

  private handleStream(call: AdsCall): void {
    const s: Stream = {
      id: ++this.streamCounter,
      call,
      peer: call.getPeer(),
      connectedAt: new Date(),
      types: new Map(),
      blocked: false,
      dirty: new Set(),
      closed: false,
    };
    this.streams.set(s.id, s);
    const done = (why: string): void => {
      if (s.closed) return;
      s.closed = true;
      this.streams.delete(s.id);
      this.log(`stream ${s.id} (${s.node?.id ?? s.peer}) closed: ${why}`);
      this.emit({ kind: 'disconnect', stream: s.id, nodeId: s.node?.id ?? '' });
    };
    call.on('data', (req: DiscoveryRequest) => {
      try {
        this.onRequest(s, req);
      } catch (err) {
        // A bug here must not take the whole control plane down; drop this stream only.
        this.log(`stream ${s.id}: ${(err as Error).stack ?? String(err)}`);
        call.emit('error', { code: grpc.status.INTERNAL, details: (err as Error).message });
        done('internal error');
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
      s.blocked = false;
      const types = [...s.dirty];
      s.dirty.clear();
      for (const t of types) this.push(s, t);
    });
  }

  private onRequest(s: Stream, req: DiscoveryRequest): void {
    if (req.node && !s.node) {
      s.node = req.node;
      this.log(`stream ${s.id}: node ${req.node.id} (cluster ${req.node.cluster}) connected from ${s.peer}`);
      this.emit({ kind: 'connect', stream: s.id, nodeId: req.node.id });
    }
    const typeUrl = req.type_url;
    if (!KNOWN_TYPES.has(typeUrl)) {
      this.log(`stream ${s.id}: ignoring request for unsupported type ${typeUrl}`);
      return;
    }
    let st = s.types.get(typeUrl);
    const nodeId = s.node?.id ?? '';
    if (req.response_nonce && st?.lastSentNonce !== undefined) {
      // A request answering an older response is stale: the client will answer the newer one.
      // (A nonce we never sent on this stream, e.g. from before a reconnect, counts as a first request.)
      if (req.response_nonce !== st.lastSentNonce) return;
      const err = req.error_detail;
      // grpc-js repeats the nonce (and error_detail) on later requests that only change
      // names: record each response's ACK or NACK once.
      if (st.answeredNonce !== req.response_nonce) {
        st.answeredNonce = req.response_nonce;
        if (err && (err.code !== 0 || err.message)) {
          st.lastNack = { version: st.lastSentVersion ?? '', message: err.message, at: new Date() };
          this.log(`NACK from ${nodeId} for ${SHORT[typeUrl]} version ${st.lastSentVersion}: ${err.message}`);
          this.emit({ kind: 'nack', stream: s.id, nodeId, typeUrl, version: st.lastSentVersion ?? '', message: err.message });
          // `sent` stays: the same content would be rejected again; the next change is pushed.
        } else {
          st.ackedVersion = req.version_info;
          st.lastAckAt = new Date();
          this.emit({ kind: 'ack', stream: s.id, nodeId, typeUrl, version: req.version_info });
        }
      }
    }
    if (!st) {
      st = { names: new Set(), wildcard: false, everNamed: false, mustRespond: true };
      s.types.set(typeUrl, st);
    }
    const requested = req.resource_names.filter((n) => n !== '*');
    // Envoy subscribes to all listeners/clusters with an empty list (or '*'); grpc-js
    // names them. Once named, an empty list means "none".
    const wildcard =
      FULL_STATE_TYPES.has(typeUrl) && (req.resource_names.includes('*') || (req.resource_names.length === 0 && !st.everNamed));
    if (requested.length > 0) st.everNamed = true;
    const names = new Set(requested);
    if (wildcard !== st.wildcard || !sameSet(names, st.names)) {
      st.wildcard = wildcard;
      st.names = names;
      st.mustRespond = true;
    }
    this.push(s, typeUrl);
  }

  /** Sends `typeUrl` to the stream if it must answer or its resources changed. Never blocks. */
  private push(s: Stream, typeUrl: string): void {
    const st = s.types.get(typeUrl);
    const snapshot = this.snapshot;
    if (!st || !snapshot || s.closed) return; // before ready: held, answered by install()
    if (s.blocked) {
      s.dirty.add(typeUrl);
      return;
    }
    const entries = this.resolve(snapshot, typeUrl, st);
    if (!st.mustRespond && st.sent && sameEntries(entries, st.sent)) return;
    if (!FULL_STATE_TYPES.has(typeUrl) && st.names.size === 0) {
      // Unsubscribed from every route/assignment: nothing to answer (SotW clients
      // ignore a missing RouteConfiguration/ClusterLoadAssignment anyway).
      st.mustRespond = false;
      st.sent = new Map();
      return;
    }
    const nonce = `${s.id}-${++this.nonceCounter}`;
    const response: DiscoveryResponse = { version_info: snapshot.version, resources: entries.map((e) => e.any), type_url: typeUrl, nonce };
    st.mustRespond = false;
    st.sent = new Map(entries.map((e) => [e.name, e.hash]));
    st.lastSentVersion = snapshot.version;
    st.lastSentNonce = nonce;
    st.lastSentAt = new Date();
    const nodeId = s.node?.id ?? '';
    this.emit({ kind: 'send', stream: s.id, nodeId, typeUrl, version: snapshot.version, nonce, resources: entries.length });
    if (!s.call.write(response)) s.blocked = true;
  }

  /** The resources a type state currently refers to, in name order. */
  private resolve(snapshot: Snapshot, typeUrl: string, st: TypeState): SnapshotEntry[] {
    const out = new Map<string, SnapshotEntry>();
    if (st.wildcard) for (const e of snapshot.all(typeUrl)) out.set(e.name, e);
    for (const name of st.names) {
      const e = typeUrl === LISTENER_TYPE && name.startsWith(SERVER_LISTENER_PREFIX) ? this.serverListener(name) : snapshot.get(typeUrl, name);
      if (e) out.set(name, e);
    }
    return [...out.keys()].sort().map((n) => out.get(n)!);
  }

  private serverListener(name: string): SnapshotEntry | undefined {
    if (this.serverListeners.has(name)) return this.serverListeners.get(name);
    let entry: SnapshotEntry | undefined;
    const r = this.opts.serverListener?.(name);
    if (r) {
      try {
        entry = this.encoder.entry(r);
      } catch (err) {
        this.log(`server listener ${name}: ${(err as Error).message}`);
      }
    }
    this.serverListeners.set(name, entry);
    return entry;
  }

  private log(msg: string): void {
    this.opts.log?.(msg);
  }

  private emit(e: AdsEvent): void {
    this.opts.onEvent?.(e);
  }
}

function sameSet(a: Set<string>, b: Set<string>): boolean {
  if (a.size !== b.size) return false;
  for (const x of a) if (!b.has(x)) return false;
  return true;
}

function sameEntries(entries: SnapshotEntry[], sent: Map<string, string>): boolean {
  return entries.length === sent.size && entries.every((e) => sent.get(e.name) === e.hash);
}
