// The agent's side of the agent channel: dials out to the hub, says who it is,
// sends its cluster's discovered state, and receives the view. Reconnects with
// backoff forever; the agent keeps serving its last good state meanwhile.
//
// Backoff: 0.25 s doubling, with jitter (agents that lost the hub together do
// not return together), to 0.6 s while the hub cannot be reached (a failed dial
// costs nothing, and a hub that returns must see every agent within about a
// second), to 5 s once a hub welcomed the agent and dropped it again (e.g. while
// overloaded: no full report in a fast loop) or rejected it. It starts over only
// once a connection has stayed up for HEALTHY_AFTER_MS. While connected the
// agent heartbeats every HEARTBEAT_INTERVAL_MS (the hub's cluster liveness).
// Several hub addresses (replicas on one store, only the leader serves): a
// connection that ends or fails moves on to the next address at once (a
// standby answers UNAVAILABLE "not the leader"); the backoff applies after a
// whole round of addresses without a welcome, with the ceilings above.
import type * as grpc from '@grpc/grpc-js';
import { keyOf, refOf, type ApiObject } from '../api/index.js';
import { agentChannelClient, HEARTBEAT_INTERVAL_MS, type AgentChannelClient, type AgentMessage, type HubMessage, type HubStream, type View } from '../channel/protocol.js';
import { hubAddresses } from '../util/address.js';
import { internObject } from '../util/intern.js';
import { logger } from '../util/log.js';

const log = logger('agent.hub');

export const BACKOFF_MIN_MS = 250;
export const BACKOFF_MAX_MS = 5000;
/**
 * The backoff's ceiling while no hub answers at all: a redial every 300-600 ms (jittered), so an agent is back
 * within a second of the hub's return. A refused dial costs the down hub's host nothing worth counting.
 */
export const BACKOFF_UNREACHABLE_MAX_MS = 600;
/** A connection that lasted this long was healthy: the next loss starts the backoff over. */
export const HEALTHY_AFTER_MS = 10_000;
/**
 * ViewAcks are status (the hub shows how far each agent is): the first after a
 * quiet second goes at once, later ones at most once per interval, the last
 * revision always. A busy fleet then costs the hub one ACK per agent per second,
 * not one per change.
 */
export const ACK_INTERVAL_MS = 1000;

export interface ViewUpdate {
  revision: number;
  full: boolean;
  /**
   * The agent's copy now holds at least the hub's state as of this connection's
   * Welcome. A full view may be older and followed by the changes since: until
   * this is true the copy is partial and not worth serving.
   */
  caughtUp: boolean;
  upserts: ApiObject[];
  /** object keys */
  deletes: string[];
  /** The upserts as the hub sent them (JSON arrays, one per message): a full view is journaled from these as they are. */
  upsertsJson: string[];
}

/** The next delay: the current backoff with jitter (between half and all of it). */
export function jittered(backoffMs: number, random: () => number = Math.random): number {
  return Math.round(backoffMs * (0.5 + random() / 2));
}

export interface HubConnectionOptions {
  /** The hub's agent channel, HOST:PORT; several replicas comma-separated. */
  hubAddress: string;
  hello: { cluster: string; network: string; region: string; zones: string[]; agentVersion: string };
  /** The view revision the agent holds (resume point). */
  viewRevision: () => number;
  onView: (v: ViewUpdate) => void;
  /** The whole discovered state of the cluster: the first report of every connection. */
  report: () => ApiObject[];
  /** Namespaces to import (empty: all). */
  importNamespaces?: string[];
  /**
   * mTLS credentials, rebuilt (new version) when the agent's certificate or
   * the bundle changes; undefined from the function: not ready, do not dial.
   * Without this option the channel is plaintext (--insecure-channel).
   */
  credentials?: () => { creds: grpc.ChannelCredentials; version: number } | undefined;
  /** Messages about trust (bundle, issued certificates, refused CSRs); `sessionStarted` on Welcome. */
  trust?: {
    sessionStarted(send: (m: AgentMessage) => boolean): void;
    sessionEnded(): void;
    onHubMessage(m: HubMessage): boolean;
  };
  /** Override the time after which a connection counts as healthy (tests). */
  healthyAfterMs?: number;
}

export interface HubConnectionStatus {
  /** The address in use (or dialled next). */
  address: string;
  /** Every address given, when several. */
  addresses?: string[];
  connected: boolean;
  since?: string;
  lastError?: string;
  lastReportAcked?: number;
  reportsSent: number;
  /** Connections made (Welcome received) and lost since start. */
  connects: number;
  /** Delay before the next dial while disconnected (ms). */
  nextDialMs?: number;
}

export class HubConnection {
  private client: AgentChannelClient | undefined;
  private clientVersion = -1;
  private clientAddress: string | undefined;
  private readonly addresses: string[];
  /** The address dialled (index into addresses), and where the current round of addresses began. */
  private index = 0;
  private roundStart = 0;
  /** A dial of this round was welcomed and dropped, or rejected: the slow ceiling. */
  private roundSlow = false;
  private roundRejected = false;
  private stream: HubStream | undefined;
  private connected = false;
  private since: string | undefined;
  private lastError: string | undefined;
  private backoffMs = BACKOFF_MIN_MS;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  /** The current dial got a Welcome (set by onMessage, read when the stream ends). */
  private onWelcome: (() => void) | undefined;
  /** The current dial was rejected by the hub. */
  private rejected = false;
  private nextDialMs: number | undefined;
  private connects = 0;
  private healthyTimer: NodeJS.Timeout | undefined;
  /** A view arriving in several messages: what came so far. */
  private group: { revision: number; full: boolean; upserts: ApiObject[]; deletes: string[]; json: string[] } | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private ackTimer: NodeJS.Timeout | undefined;
  private lastAckAt = 0;
  private ackRevision = 0;
  /** The hub's revision at Welcome (0 from hubs that do not say). */
  private welcomeRevision = 0;
  private reportTimer: NodeJS.Timeout | undefined;
  private lastDeltaAt = -Infinity;
  private generation = 0;
  private lastReportAcked: number | undefined;
  private reportsSent = 0;
  private readonly pendingUpserts = new Map<string, ApiObject>();
  private readonly pendingDeletes = new Set<string>();
  private stopped = false;

  constructor(private readonly opts: HubConnectionOptions) {
    this.addresses = hubAddresses(opts.hubAddress);
    if (this.addresses.length === 0) throw new RangeError('hubAddress: no address');
  }

  private get address(): string {
    return this.addresses[this.index]!;
  }

  start(): void {
    this.dial();
  }

  /** A client with the current credentials: a new one after they changed (takes effect on the next dial). */
  private currentClient(): AgentChannelClient | undefined {
    if (this.clientAddress !== this.address) {
      this.client?.close();
      this.client = undefined;
      this.clientAddress = this.address;
    }
    if (!this.opts.credentials) {
      this.client ??= agentChannelClient(this.address);
      return this.client;
    }
    const c = this.opts.credentials();
    if (!c) return undefined;
    if (!this.client || this.clientVersion !== c.version) {
      this.client?.close();
      this.client = agentChannelClient(this.address, c.creds);
      this.clientVersion = c.version;
    }
    return this.client;
  }

  stop(): void {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.reportTimer) clearTimeout(this.reportTimer);
    if (this.healthyTimer) clearTimeout(this.healthyTimer);
    if (this.ackTimer) clearTimeout(this.ackTimer);
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.stream?.cancel();
    this.client?.close();
  }

  status(): HubConnectionStatus {
    const s: HubConnectionStatus = {
      address: this.address,
      ...(this.addresses.length > 1 ? { addresses: this.addresses } : {}),
      connected: this.connected,
      reportsSent: this.reportsSent,
      connects: this.connects,
    };
    if (!this.connected && this.nextDialMs !== undefined) s.nextDialMs = this.nextDialMs;
    if (this.since) s.since = this.since;
    if (this.lastError) s.lastError = this.lastError;
    if (this.lastReportAcked !== undefined) s.lastReportAcked = this.lastReportAcked;
    return s;
  }

  /**
   * Queues changed and deleted objects for the next delta report; a later change
   * of a key wins. The first change after a quiet window goes out in this turn
   * of the event loop; later ones wait until `delayMs` after the previous report
   * (a burst becomes few reports, an isolated change is not held back).
   */
  reportChanges(upserts: ApiObject[], deletes: string[], delayMs = 5): void {
    for (const o of upserts) {
      const k = keyOf(refOf(o));
      this.pendingDeletes.delete(k);
      this.pendingUpserts.set(k, o);
    }
    for (const k of deletes) {
      this.pendingUpserts.delete(k);
      this.pendingDeletes.add(k);
    }
    if (!this.connected || this.reportTimer) return;
    const wait = Math.max(0, this.lastDeltaAt + delayMs - performance.now());
    this.reportTimer = setTimeout(() => {
      this.reportTimer = undefined;
      this.lastDeltaAt = performance.now();
      this.sendDelta();
    }, wait);
  }

  /** Sends the proxies' sync state (live state for the hub's proxy-status). */
  sendProxyStatus(proxies: unknown[], viewRevision: number, identities: unknown[] = []): void {
    if (!this.stream || !this.connected) return;
    this.stream.write({ proxyStatus: { proxiesJson: JSON.stringify(proxies), viewRevision: String(viewRevision), identitiesJson: JSON.stringify(identities) } });
  }

  get isConnected(): boolean {
    return this.connected;
  }

  private dial(): void {
    if (this.stopped) return;
    const client = this.currentClient();
    if (!client) {
      this.retryTimer = setTimeout(() => this.dial(), 1000);
      return;
    }
    const stream = client.connect();
    this.stream = stream;
    let ended = false;
    let welcomed = false;
    this.rejected = false;
    this.onWelcome = () => (welcomed = true);
    const onEnd = (why: string) => {
      if (ended) return;
      ended = true;
      const wasConnected = this.connected;
      // A session that lasted (its healthy timer fired) was lost, not refused: the hub died or a replica took
      // over, and the fast ceiling applies; one dropped soon after its welcome looks like an overloaded hub.
      const lasted = welcomed && this.healthyTimer === undefined;
      this.connected = false;
      this.group = undefined;
      if (this.ackTimer) clearTimeout(this.ackTimer);
      this.ackTimer = undefined;
      if (this.healthyTimer) clearTimeout(this.healthyTimer);
      this.healthyTimer = undefined;
      if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
      this.heartbeatTimer = undefined;
      if (this.stream === stream) this.stream = undefined;
      this.opts.trust?.sessionEnded();
      if (this.stopped) return;
      const from = this.address;
      if ((welcomed && !lasted) || this.rejected) this.roundSlow = true;
      if (this.rejected) this.roundRejected = true;
      // The next address; a whole round without a welcome waits the backoff (one address: every dial is a round).
      this.index = (this.index + 1) % this.addresses.length;
      const roundDone = this.index === this.roundStart;
      const delay = roundDone ? jittered(this.backoffMs) : 0;
      if (wasConnected) log.warn('lost the hub; serving the last good state', { hub: from, reason: why, next: this.address, redialInMs: delay });
      this.nextDialMs = delay;
      this.retryTimer = setTimeout(() => this.dial(), delay);
      if (!roundDone) return;
      // Welcomed and dropped, or rejected: the slow ceiling; never answered: the fast one.
      const ceiling = this.roundSlow ? BACKOFF_MAX_MS : BACKOFF_UNREACHABLE_MAX_MS;
      this.backoffMs = Math.max(Math.min(this.backoffMs * 2, ceiling), this.roundRejected ? BACKOFF_MAX_MS : 0);
      this.roundSlow = false;
      this.roundRejected = false;
    };
    stream.on('data', (m: HubMessage) => this.onMessage(m));
    stream.on('error', (err: Error & { details?: string }) => {
      if (!this.lastError || this.connected || !this.lastError.startsWith('hub rejected'))
        this.lastError = `hub ${this.address}: ${err.details ?? err.message}${hint(err.details ?? err.message, !!this.opts.credentials)}`;
      onEnd(err.message);
    });
    stream.on('end', () => onEnd('stream ended'));
    stream.on('close', () => onEnd('stream closed'));
    stream.write({
      hello: { ...this.opts.hello, viewRevision: String(this.opts.viewRevision()), importNamespaces: this.opts.importNamespaces ?? [], viewChunks: true },
    });
  }

  private onMessage(m: HubMessage): void {
    if (m.welcome) {
      this.onWelcome?.();
      this.connected = true;
      if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
      const hbStream = this.stream;
      this.heartbeatTimer = setInterval(() => {
        if (this.connected && this.stream === hbStream) hbStream?.write({ heartbeat: {} });
      }, HEARTBEAT_INTERVAL_MS);
      this.heartbeatTimer.unref();
      this.connects++;
      this.roundStart = this.index;
      this.welcomeRevision = Number(m.welcome.revision ?? 0) || 0;
      this.since = new Date().toISOString();
      this.lastError = undefined;
      this.nextDialMs = undefined;
      // Not reset yet: only a connection that stays up counts (see the header).
      if (this.healthyTimer) clearTimeout(this.healthyTimer);
      this.healthyTimer = setTimeout(() => {
        this.healthyTimer = undefined;
        if (this.connected) this.backoffMs = BACKOFF_MIN_MS;
      }, this.opts.healthyAfterMs ?? HEALTHY_AFTER_MS);
      this.healthyTimer.unref();
      log.info('connected to the hub', { hub: this.address, hubVersion: m.welcome.hubVersion, channel: this.opts.credentials ? 'mTLS' : 'insecure' });
      const stream = this.stream;
      this.opts.trust?.sessionStarted((msg) => {
        if (!stream || this.stream !== stream || !this.connected) return false;
        stream.write(msg);
        return true;
      });
      this.sendReport();
    } else if (m.view) {
      try {
        this.onViewMessage(m.view);
      } catch (err) {
        this.group = undefined;
        log.error('bad view from the hub', { error: String(err) });
      }
    } else if (m.reportAck) {
      this.lastReportAcked = Number(m.reportAck.generation);
    } else if (this.opts.trust?.onHubMessage(m)) {
      // handled by the trust module
    } else if (m.rejected) {
      this.lastError = `hub rejected this agent (${m.rejected.code}): ${m.rejected.message}`;
      log.error(this.lastError);
      // A rejection is about configuration: retry slowly until someone fixes it.
      this.rejected = true;
      this.backoffMs = BACKOFF_MAX_MS;
    }
  }

  /**
   * A view may come in several messages (View.more): parse each as it arrives
   * (no fleet-sized string at once), apply and ACK the whole once the last is in.
   * full=true starts a new group, discarding an unfinished one.
   */
  private onViewMessage(v: View): void {
    const revision = Number(v.revision);
    if (v.full || !this.group) this.group = { revision, full: v.full, upserts: [], deletes: [], json: [] };
    const g = this.group;
    if (g.revision !== revision) throw new Error(`view message of revision ${revision} inside a view of revision ${g.revision}`);
    const upserts = JSON.parse(v.upsertsJson || '[]') as ApiObject[];
    for (const o of upserts) g.upserts.push(internObject(o));
    for (const k of JSON.parse(v.deletesJson || '[]') as string[]) g.deletes.push(k);
    if (g.full && v.upsertsJson) g.json.push(v.upsertsJson);
    if (v.more) return;
    this.group = undefined;
    this.opts.onView({ revision: g.revision, full: g.full, caughtUp: g.revision >= this.welcomeRevision, upserts: g.upserts, deletes: g.deletes, upsertsJson: g.json });
    this.ack(g.revision);
  }

  private ack(revision: number): void {
    this.ackRevision = revision;
    if (this.ackTimer) return;
    const send = () => {
      this.ackTimer = undefined;
      this.lastAckAt = performance.now();
      if (this.connected) this.stream?.write({ viewAck: { revision: String(this.ackRevision) } });
    };
    const wait = this.lastAckAt + ACK_INTERVAL_MS - performance.now();
    if (wait <= 0) send();
    else this.ackTimer = setTimeout(send, wait);
  }

  /** A full report: the whole state, which supersedes anything pending. */
  private sendReport(): void {
    if (!this.stream || !this.connected) return;
    this.pendingUpserts.clear();
    this.pendingDeletes.clear();
    this.generation += 1;
    this.reportsSent += 1;
    this.stream.write({ report: { generation: String(this.generation), full: true, objectsJson: JSON.stringify(this.opts.report()) } });
  }

  private sendDelta(): void {
    if (!this.stream || !this.connected) return;
    if (this.pendingUpserts.size === 0 && this.pendingDeletes.size === 0) return;
    const upserts = [...this.pendingUpserts.values()];
    const deletes = [...this.pendingDeletes];
    this.pendingUpserts.clear();
    this.pendingDeletes.clear();
    this.generation += 1;
    this.reportsSent += 1;
    this.stream.write({
      report: { generation: String(this.generation), full: false, upsertsJson: JSON.stringify(upserts), deletesJson: JSON.stringify(deletes) },
    });
  }
}

/** What a connection failure probably means, when the message alone does not say. */
function hint(message: string, tls: boolean): string {
  if (tls && /handshake|wrong version|EPROTO|ECONNRESET|Connection dropped|packet length/i.test(message)) {
    return ' (TLS to the hub failed: if the hub runs with --insecure-channel, start the agent with --insecure-channel too)';
  }
  if (!tls && /Protocol error|ECONNRESET|Connection dropped|Received RST_STREAM|http2|Failed to connect \(/i.test(message)) {
    return ' (the hub may require TLS: start the agent with a join token instead of --insecure-channel)';
  }
  return '';
}
