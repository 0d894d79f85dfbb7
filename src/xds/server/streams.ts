// What the SotW and delta stream state machines share: the request, status and
// event types, the stream base class (write-buffer back pressure, push order,
// NACK detection via error_detail, proxy status bookkeeping) and the per-type
// state, which is also the stream's watch in the cache's subscription index
// (cache/subscriptions.ts): a commit marks changed names on it, and the server
// flushes the touched streams. Streams read entries from the cache and write
// responses framed from their shared bytes (wire.ts); they never encode.
import type * as grpc from '@grpc/grpc-js';
import type { StreamCache, TypeWatch, Watcher } from '../cache/subscriptions.js';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, RESOURCE_TYPES, ROUTE_TYPE } from '../../xdsapi/index.js';

// Plain-object shapes of request messages as proto-loader hands them over
// (keepCase, defaults, enums as strings).
export interface Locality {
  region: string;
  zone: string;
  sub_zone: string;
}
export interface NodeMessage {
  id: string;
  cluster: string;
  locality: Locality | null;
  user_agent_name: string;
  user_agent_version?: string;
}
export interface ErrorDetail {
  code: number;
  message: string;
}

export type XdsProtocol = 'sotw' | 'delta';

export type AdsEvent =
  | { kind: 'connect' | 'disconnect'; stream: number; nodeId: string; protocol?: XdsProtocol }
  | {
      kind: 'send';
      stream: number;
      nodeId: string;
      typeUrl: string;
      version: string;
      nonce: string;
      resources: number;
      /** Delta only: names in removed_resources. */
      removed?: number;
      protocol?: XdsProtocol;
    }
  | { kind: 'ack'; stream: number; nodeId: string; typeUrl: string; version: string; protocol?: XdsProtocol }
  | { kind: 'nack'; stream: number; nodeId: string; typeUrl: string; version: string; message: string; protocol?: XdsProtocol };

export interface ProxyTypeStatus {
  typeUrl: string;
  /** Names the proxy subscribed to explicitly (0 with a bare wildcard). */
  subscribed: number;
  wildcard: boolean;
  /** Resources in the last response. */
  sentResources: number;
  /** Delta: names in removed_resources of the last response. */
  removedResources?: number;
  /** Delta: resources the proxy holds as far as the server knows. */
  knownResources?: number;
  lastSentVersion?: string;
  lastSentNonce?: string;
  lastSentAt?: string;
  ackedVersion?: string;
  lastAckAt?: string;
  lastNack?: { version: string; message: string; at: string };
}

export interface ProxyStatus {
  stream: number;
  protocol: XdsProtocol;
  nodeId: string;
  nodeCluster: string;
  locality: { region: string; zone: string; subZone: string };
  userAgent: string;
  peer: string;
  connectedSince: string;
  /** Keyed by type URL. */
  types: Record<string, ProxyTypeStatus>;
}

export const KNOWN_TYPES = new Set<string>(RESOURCE_TYPES);
/** Types whose SotW responses must list every subscribed resource (missing = deleted); also the wildcard types. */
export const FULL_STATE_TYPES = new Set<string>([LISTENER_TYPE, CLUSTER_TYPE]);
/** Make before break (xDS protocol, "eventual consistency"): clusters and endpoints before the listeners and routes using them. */
export const PUSH_ORDER = [CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE] as const;
export const SHORT: Record<string, string> = { [LISTENER_TYPE]: 'LDS', [ROUTE_TYPE]: 'RDS', [CLUSTER_TYPE]: 'CDS', [ENDPOINT_TYPE]: 'EDS' };

/** What a stream needs: the cache it reads and watches, and the server's bookkeeping. */
export interface StreamHost {
  readonly cache: StreamCache;
  nextNonce(stream: number): string;
  /** Counts a response in stats(). */
  responded(): void;
  /** Someone listens to events (else per-message events are not even built). */
  readonly observed: boolean;
  emit(e: AdsEvent): void;
  log(msg: string): void;
}

/** Per stream and type; the stream's watch of the type. */
export interface TypeStateBase extends TypeWatch {
  readonly stream: XdsStream;
  readonly typeUrl: string;
  /** Explicitly subscribed names. */
  names: Set<string>;
  wildcard: boolean;
  /** Subscribed names whose entry changed since the last flush (marked by the cache). */
  readonly dirty: Set<string>;
  /** A request (or becoming ready) must be answered even if nothing changed. */
  mustRespond: boolean;
  sentResources: number;
  lastSentVersion?: string;
  lastSentNonce?: string;
  /** Epoch ms (a number, not a Date: a thousand streams ACK every change). */
  lastSentAt?: number;
  ackedVersion?: string;
  lastAckAt?: number;
  lastNack?: { version: string; message: string; at: number };
}

/** The write side of a call: responses are pre-encoded buffers (see wire.ts). */
export type ResponseCall = grpc.ServerDuplexStream<unknown, Buffer>;

export abstract class XdsStream<S extends TypeStateBase = TypeStateBase> implements Watcher {
  abstract readonly protocol: XdsProtocol;
  readonly types = new Map<string, S>();
  readonly connectedAt = new Date();
  node: NodeMessage | undefined;
  /** Write buffer full: nothing is written until 'drain'; the work stays marked on the type states. */
  blocked = false;
  closed = false;

  constructor(
    readonly id: number,
    protected readonly call: ResponseCall,
    readonly peer: string,
    protected readonly host: StreamHost,
  ) {}

  /** Handles one request (already decoded). */
  abstract handle(req: unknown): void;
  /** Sends what the type state owes the client, if anything; never blocks. */
  protected abstract flushType(st: S): void;
  protected abstract hasWork(st: S): boolean;
  /** A change of `names` (a commit's list for this type, shared: do not modify) reaches a wildcard subscriber. */
  abstract notifyWildcard(st: S, names: readonly string[]): void;

  /** Flushes every type with pending work, clusters and endpoints first. */
  flushAll(): void {
    if (this.closed) return;
    for (const t of PUSH_ORDER) {
      const st = this.types.get(t);
      if (st && this.hasWork(st)) this.flushType(st);
    }
  }

  onDrain(): void {
    this.blocked = false;
    this.flushAll();
  }

  protected write(buf: Buffer): void {
    if (!this.call.write(buf)) this.blocked = true;
  }

  protected get nodeId(): string {
    return this.node?.id ?? '';
  }

  protected recordNode(node: NodeMessage | null | undefined): void {
    if (!node || this.node) return;
    this.node = node;
    this.host.log(`stream ${this.id} (${this.protocol}): node ${node.id} (cluster ${node.cluster}) connected from ${this.peer}`);
    this.host.emit({ kind: 'connect', stream: this.id, nodeId: node.id, protocol: this.protocol });
  }

  protected recordAck(st: S, version: string, err: ErrorDetail | null | undefined): void {
    if (err && (err.code !== 0 || err.message)) {
      st.lastNack = { version, message: err.message, at: Date.now() };
      this.host.log(`NACK from ${this.nodeId} for ${SHORT[st.typeUrl]} version ${version}: ${err.message}`);
      this.host.emit({ kind: 'nack', stream: this.id, nodeId: this.nodeId, typeUrl: st.typeUrl, version, message: err.message, protocol: this.protocol });
    } else {
      st.ackedVersion = version;
      st.lastAckAt = Date.now();
      if (this.host.observed) this.host.emit({ kind: 'ack', stream: this.id, nodeId: this.nodeId, typeUrl: st.typeUrl, version, protocol: this.protocol });
    }
  }

  protected recordSend(st: S, version: string, nonce: string, resources: number, removed?: number): void {
    st.sentResources = resources;
    st.lastSentVersion = version;
    st.lastSentNonce = nonce;
    st.lastSentAt = Date.now();
    this.host.responded();
    if (!this.host.observed) return;
    const e: AdsEvent = { kind: 'send', stream: this.id, nodeId: this.nodeId, typeUrl: st.typeUrl, version, nonce, resources, protocol: this.protocol };
    if (removed !== undefined) e.removed = removed;
    this.host.emit(e);
  }

  /** Drops every subscription of this stream from the index. */
  dispose(): void {
    this.closed = true;
    for (const st of this.types.values()) {
      for (const n of st.names) this.host.cache.unsubscribe(st, n);
      if (st.wildcard) this.host.cache.setWildcard(st, false);
    }
  }

  protected typeStatus(st: S): ProxyTypeStatus {
    const t: ProxyTypeStatus = { typeUrl: st.typeUrl, subscribed: st.names.size, wildcard: st.wildcard, sentResources: st.sentResources };
    if (st.lastSentVersion !== undefined) t.lastSentVersion = st.lastSentVersion;
    if (st.lastSentNonce !== undefined) t.lastSentNonce = st.lastSentNonce;
    if (st.lastSentAt !== undefined) t.lastSentAt = new Date(st.lastSentAt).toISOString();
    if (st.ackedVersion !== undefined) t.ackedVersion = st.ackedVersion;
    if (st.lastAckAt !== undefined) t.lastAckAt = new Date(st.lastAckAt).toISOString();
    if (st.lastNack) t.lastNack = { ...st.lastNack, at: new Date(st.lastNack.at).toISOString() };
    return t;
  }

  status(): ProxyStatus {
    const types: Record<string, ProxyTypeStatus> = {};
    for (const [typeUrl, st] of this.types) types[typeUrl] = this.typeStatus(st);
    const n = this.node;
    const loc = n?.locality;
    return {
      stream: this.id,
      protocol: this.protocol,
      nodeId: n?.id ?? '',
      nodeCluster: n?.cluster ?? '',
      locality: { region: loc?.region ?? '', zone: loc?.zone ?? '', subZone: loc?.sub_zone ?? '' },
      userAgent: [n?.user_agent_name, n?.user_agent_version].filter(Boolean).join(' '),
      peer: this.peer,
      connectedSince: this.connectedAt.toISOString(),
      types,
    };
  }
}
