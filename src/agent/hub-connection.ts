// The agent's side of the agent channel: dials out to the hub, says who it is,
// sends its cluster's discovered state, and receives the view. Reconnects with
// backoff forever; the agent keeps serving its last good state meanwhile.
import type * as grpc from '@grpc/grpc-js';
import { keyOf, refOf, type ApiObject } from '../api/index.js';
import { agentChannelClient, type AgentChannelClient, type AgentMessage, type HubMessage, type HubStream } from '../channel/protocol.js';
import { logger } from '../util/log.js';

const log = logger('agent.hub');

export interface ViewUpdate {
  revision: number;
  full: boolean;
  upserts: ApiObject[];
  /** object keys */
  deletes: string[];
}

export interface HubConnectionOptions {
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
}

export interface HubConnectionStatus {
  address: string;
  connected: boolean;
  since?: string;
  lastError?: string;
  lastReportAcked?: number;
  reportsSent: number;
}

export class HubConnection {
  private client: AgentChannelClient | undefined;
  private clientVersion = -1;
  private stream: HubStream | undefined;
  private connected = false;
  private since: string | undefined;
  private lastError: string | undefined;
  private backoffMs = 250;
  private retryTimer: NodeJS.Timeout | undefined;
  private reportTimer: NodeJS.Timeout | undefined;
  private generation = 0;
  private lastReportAcked: number | undefined;
  private reportsSent = 0;
  private readonly pendingUpserts = new Map<string, ApiObject>();
  private readonly pendingDeletes = new Set<string>();
  private stopped = false;

  constructor(private readonly opts: HubConnectionOptions) {}

  start(): void {
    this.dial();
  }

  /** A client with the current credentials: a new one after they changed (takes effect on the next dial). */
  private currentClient(): AgentChannelClient | undefined {
    if (!this.opts.credentials) {
      this.client ??= agentChannelClient(this.opts.hubAddress);
      return this.client;
    }
    const c = this.opts.credentials();
    if (!c) return undefined;
    if (!this.client || this.clientVersion !== c.version) {
      this.client?.close();
      this.client = agentChannelClient(this.opts.hubAddress, c.creds);
      this.clientVersion = c.version;
    }
    return this.client;
  }

  stop(): void {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.reportTimer) clearTimeout(this.reportTimer);
    this.stream?.cancel();
    this.client?.close();
  }

  status(): HubConnectionStatus {
    const s: HubConnectionStatus = { address: this.opts.hubAddress, connected: this.connected, reportsSent: this.reportsSent };
    if (this.since) s.since = this.since;
    if (this.lastError) s.lastError = this.lastError;
    if (this.lastReportAcked !== undefined) s.lastReportAcked = this.lastReportAcked;
    return s;
  }

  /**
   * Queues changed and deleted objects for the next delta report; several changes
   * within the window become one report, and a later change of a key wins.
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
    this.reportTimer = setTimeout(() => {
      this.reportTimer = undefined;
      this.sendDelta();
    }, delayMs);
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
    const onEnd = (why: string) => {
      if (ended) return;
      ended = true;
      const wasConnected = this.connected;
      this.connected = false;
      if (this.stream === stream) this.stream = undefined;
      this.opts.trust?.sessionEnded();
      if (this.stopped) return;
      if (wasConnected) log.warn('lost the hub; serving the last good state', { reason: why });
      this.retryTimer = setTimeout(() => this.dial(), this.backoffMs);
      this.backoffMs = Math.min(this.backoffMs * 2, 5000);
    };
    stream.on('data', (m: HubMessage) => this.onMessage(m));
    stream.on('error', (err: Error & { details?: string }) => {
      if (!this.lastError || this.connected || !this.lastError.startsWith('hub rejected')) this.lastError = `hub ${this.opts.hubAddress}: ${err.details ?? err.message}${hint(err.details ?? err.message, !!this.opts.credentials)}`;
      onEnd(err.message);
    });
    stream.on('end', () => onEnd('stream ended'));
    stream.on('close', () => onEnd('stream closed'));
    stream.write({
      hello: { ...this.opts.hello, viewRevision: String(this.opts.viewRevision()), importNamespaces: this.opts.importNamespaces ?? [] },
    });
  }

  private onMessage(m: HubMessage): void {
    if (m.welcome) {
      this.connected = true;
      this.since = new Date().toISOString();
      this.lastError = undefined;
      this.backoffMs = 250;
      log.info('connected to the hub', { hub: this.opts.hubAddress, hubVersion: m.welcome.hubVersion, channel: this.opts.credentials ? 'mTLS' : 'insecure' });
      const stream = this.stream;
      this.opts.trust?.sessionStarted((msg) => {
        if (!stream || this.stream !== stream || !this.connected) return false;
        stream.write(msg);
        return true;
      });
      this.sendReport();
    } else if (m.view) {
      const v = m.view;
      try {
        const update: ViewUpdate = {
          revision: Number(v.revision),
          full: v.full,
          upserts: JSON.parse(v.upsertsJson || '[]') as ApiObject[],
          deletes: JSON.parse(v.deletesJson || '[]') as string[],
        };
        this.opts.onView(update);
        this.stream?.write({ viewAck: { revision: String(update.revision) } });
      } catch (err) {
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
      this.backoffMs = 5000;
    }
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
