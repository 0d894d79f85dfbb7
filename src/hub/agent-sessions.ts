// Hub side of the agent channel: one session per connected agent. It checks
// who the agent is, takes its reports (the whole truth for its cluster),
// and streams the view: a full copy first (or only changes, when the agent
// already holds a revision the hub still has history for), then changes.
// The view itself is built and encoded once for all agents (view-feed.ts); a
// session only queues shared bytes and writes them as its stream drains.
import type * as grpc from '@grpc/grpc-js';
import { clusterOf, keyOf, parseKey, refOf, type ApiObject, type Cluster, type ObjectRef } from '../api/index.js';
import { CsrRejected } from '../ca/index.js';
import { REPORT_KINDS, type AgentMessage, type AgentStream, type Hello, type HubMessage, type Report } from '../channel/protocol.js';
import type { Store } from '../store/store.js';
import { errorMessage } from '../util/errors.js';
import { logger } from '../util/log.js';
import { applyClusterDelta, replaceClusterReport } from './objects.js';
import type { ClusterLiveness } from './cluster-liveness.js';
import type { HubTrust } from './trust.js';
import { ViewFeed, type ViewFeedStats, type ViewGroup, type ViewSubscriber } from './view-feed.js';
import { validateObject } from '../registry.js';
import { meshfedVersion } from '../util/version.js';

/** What an agent reports of a workload certificate it issued (see IssuedRecord on the agent). */
export interface WorkloadCertReport {
  spiffeId: string;
  serialNumber: string;
  notBefore: string;
  notAfter: string;
  issued: string;
}

const log = logger('hub.agents');

/**
 * An agent's last proxy status, as the JSON it sent: parsed only when read
 * (GET /proxies). Kept parsed, a thousand proxies' state would be thousands of
 * objects replaced every few seconds, all for the garbage collector to trace.
 */
interface ProxyReport {
  at: string;
  viewRevision: number;
  json: string;
}
export const HUB_VERSION = meshfedVersion();

export interface SessionInfo {
  cluster: string;
  since: string;
  peer: string;
  viewRevision: number;
  ackedRevision: number;
  reportGeneration: number;
  importNamespaces: string[];
  /** View bytes waiting to be written to this agent. */
  queuedBytes: number;
}

/**
 * Bytes written to one agent that its stream has not taken yet; more wait in
 * its queue (as references to shared bytes). gRPC copies what is written, so
 * this bounds those copies to WRITE_WINDOW per agent, whatever the view's size.
 */
const WRITE_WINDOW = 256 * 1024;
/** A session whose queue grows past this (or a few full views) is stuck: its backlog is dropped for a fresh full view. */
const MAX_QUEUED = 64 * 1024 * 1024;

export class AgentSessions {
  private readonly sessions = new Map<string, AgentSession>();
  /** Each cluster's last proxy status report (one per cluster: bounded by the fleet), kept after its agent leaves. */
  private readonly lastProxies = new Map<string, ProxyReport>();
  readonly feed: ViewFeed;
  readonly liveness: ClusterLiveness;

  constructor(
    private readonly store: Store,
    private readonly opts: {
      viewDebounceMs: number;
      trust: HubTrust;
      /** mTLS: every session must present an agent certificate of its cluster. False with --insecure-channel. */
      secure: boolean;
      /** Writes Cluster status (agent, liveness): sessions tell it who connects, speaks and leaves. */
      liveness: ClusterLiveness;
    },
  ) {
    this.feed = new ViewFeed(store, { minIntervalMs: opts.viewDebounceMs });
    this.liveness = opts.liveness;
    // Root rotation and Mesh CA changes reach every connected agent at once.
    opts.trust.onChange(() => {
      for (const s of this.sessions.values()) s.sendTrustBundle();
    });
  }

  handler(): grpc.UntypedServiceImplementation {
    return { Connect: (stream: AgentStream) => this.accept(stream) };
  }

  list(): SessionInfo[] {
    return [...this.sessions.values()].map((s) => s.info());
  }

  /** Workload certificates issued by every connected agent. */
  workloadCertificates(): (WorkloadCertReport & { cluster: string })[] {
    return [...this.sessions.values()].flatMap((s) => s.identities.map((i) => ({ ...i, cluster: s.cluster })));
  }

  /**
   * The proxies each agent last reported, by cluster (parsed now: the hub keeps
   * what agents sent as it came), with the cluster's liveness: a lost agent's
   * last report stays, marked, since its proxies keep serving what they had.
   */
  proxies(): { cluster: string; at: string; viewRevision: number; connected: boolean; liveness?: string; items: unknown[] }[] {
    return [...this.lastProxies].flatMap(([cluster, p]) => {
      let items: unknown;
      try {
        items = JSON.parse(p.json);
      } catch {
        return [];
      }
      const liveness = this.liveness.stateOf(cluster);
      return Array.isArray(items) ? [{ cluster, at: p.at, viewRevision: p.viewRevision, connected: this.sessions.has(cluster), ...(liveness ? { liveness } : {}), items }] : [];
    });
  }

  /** Ends the session of a cluster (its Cluster object was deleted). */
  disconnect(cluster: string, reason: string): void {
    this.sessions.get(cluster)?.reject('ClusterDeleted', reason);
    this.lastProxies.delete(cluster);
    this.liveness.forget(cluster);
  }

  /** Ends every session with UNAVAILABLE and `details` (this hub stepped down: agents move to the next hub address); the feed stays. */
  endSessions(details: string): void {
    for (const s of [...this.sessions.values()]) s.unavailable(details);
  }

  closeAll(): void {
    for (const s of this.sessions.values()) s.end();
    this.feed.close();
  }

  viewStats(): ViewFeedStats {
    return this.feed.stats();
  }

  /**
   * Who the peer is (mTLS only): TLS verified the certificate against the
   * bundle if there is one; the trust module checks whose it is.
   */
  private authenticate(stream: AgentStream, hello: Hello): { code: string; message: string } | undefined {
    if (!this.opts.secure) return undefined;
    const cert = stream.getAuthContext().sslPeerCertificate;
    if (!cert?.raw) {
      return {
        code: 'Unauthenticated',
        message:
          "no valid client certificate: the agent channel needs the certificate an agent gets by joining with a token (meshfed cluster add, then meshfed agent --join-token-file ...); a certificate that does not chain to the hub's trust bundle counts as none",
      };
    }
    return this.opts.trust.checkAgentCertificate(cert.raw, hello.cluster);
  }

  private accept(stream: AgentStream): void {
    let session: AgentSession | undefined;
    stream.once('data', (first: { hello?: Hello }) => {
      if (!first.hello) {
        send(stream, { rejected: { code: 'ProtocolError', message: 'the first message must be Hello' } });
        stream.end();
        return;
      }
      const refused = this.authenticate(stream, first.hello);
      if (refused) {
        log.warn('agent refused', { cluster: first.hello.cluster, peer: stream.getPeer(), ...refused });
        send(stream, { rejected: refused });
        stream.end();
        return;
      }
      session = new AgentSession(
        this.store,
        this.feed,
        stream,
        first.hello,
        this.opts.trust,
        this.opts.secure,
        this.opts.liveness,
        (cluster, report) => this.lastProxies.set(cluster, report),
        (s) => {
          if (this.sessions.get(s.cluster) === s) this.sessions.delete(s.cluster);
        },
        (s) => this.sessions.get(s.cluster) === s,
      );
      void session.start().then((ok) => {
        if (!ok || session!.isEnded) return;
        // Register the new session before ending the old one, so the old one
        // sees it is replaced and does not mark the cluster disconnected.
        const previous = this.sessions.get(session!.cluster);
        this.sessions.set(session!.cluster, session!);
        if (previous) previous.reject('Replaced', `a newer connection from cluster ${session!.cluster} replaced this one`);
      });
    });
    stream.on('error', () => session?.end());
  }
}

function send(stream: AgentStream, msg: HubMessage): void {
  if (!stream.destroyed && stream.writable) stream.write(msg);
}

class AgentSession implements ViewSubscriber {
  readonly cluster: string;
  private readonly since = new Date().toISOString();
  private attached = false;
  private lastRevisionSent = 0;
  private acked = 0;
  private generation = 0;
  private fullReceived = false;
  /** Workload certificates the agent issued (from its proxy status reports). */
  identities: WorkloadCertReport[] = [];
  private ended = false;
  // Writes of one session are serialized so status and reports never interleave.
  private chain: Promise<unknown> = Promise.resolve();
  /** View messages (shared Buffers) not written yet, and bytes handed to the stream but not taken. */
  private queue: Buffer[] = [];
  private queueHead = 0;
  private queued = 0;
  private inflight = 0;
  private resyncing = false;

  constructor(
    private readonly store: Store,
    private readonly feed: ViewFeed,
    private readonly stream: AgentStream,
    private readonly hello: Hello,
    private readonly trust: HubTrust,
    private readonly secure: boolean,
    private readonly liveness: ClusterLiveness,
    private readonly onProxies: (cluster: string, report: ProxyReport) => void,
    private readonly onEnd: (s: AgentSession) => void,
    private readonly isCurrent: (s: AgentSession) => boolean,
  ) {
    this.cluster = hello.cluster;
  }

  get isEnded(): boolean {
    return this.ended;
  }

  info(): SessionInfo {
    return {
      cluster: this.cluster,
      since: this.since,
      peer: this.stream.getPeer(),
      viewRevision: this.lastRevisionSent,
      ackedRevision: this.acked,
      reportGeneration: this.generation,
      importNamespaces: this.hello.importNamespaces ?? [],
      queuedBytes: this.queued,
    };
  }

  async start(): Promise<boolean> {
    const cluster = (await this.store.get({ kind: 'Cluster', name: this.cluster })) as Cluster | undefined;
    if (!cluster) {
      this.reject(
        'UnknownCluster',
        `cluster "${this.cluster}" is not registered at the hub: create it first (meshfed cluster add ${this.cluster} ..., or meshfed apply -f with a Cluster named "${this.cluster}")`,
      );
      return false;
    }
    const mismatch = topologyMismatch(cluster, this.hello);
    if (mismatch) {
      this.reject('TopologyMismatch', mismatch);
      return false;
    }
    if (!this.hello.viewChunks) {
      this.reject(
        'UnsupportedAgent',
        `agent ${this.hello.agentVersion || '(unknown version)'} of cluster "${this.cluster}" does not take views in several messages (Hello.view_chunks); upgrade the agent`,
      );
      return false;
    }
    log.info('agent connected', { cluster: this.cluster, peer: this.stream.getPeer() });
    // The view is attached below in this same turn: every change up to this revision reaches the agent.
    send(this.stream, { welcome: { hubVersion: HUB_VERSION, revision: String(this.store.revision()) } });
    this.sendTrustBundle();
    this.stream.on('data', (m: AgentMessage) => {
      // Heartbeats and every other message: the cluster is heard (a write only when it was not Live).
      this.liveness.heard(this.cluster);
      if (m.report) {
        const r = m.report;
        this.serialize(() => this.onReport(r));
      }
      if (m.viewAck) this.acked = Math.max(this.acked, Number(m.viewAck.revision));
      if (m.proxyStatus) this.onProxyStatus(m.proxyStatus.proxiesJson, Number(m.proxyStatus.viewRevision), m.proxyStatus.identitiesJson);
      if (m.intermediateCsr) void this.onCsr('intermediate', m.intermediateCsr.csrPem);
      if (m.agentCertCsr) void this.onCsr('agent', m.agentCertCsr.csrPem);
    });
    this.stream.on('end', () => this.end());
    this.stream.on('close', () => this.end());
    this.liveness.connected(this.cluster, { version: this.hello.agentVersion });
    this.attached = true;
    this.feed.attach(this, this.hello.importNamespaces, Number(this.hello.viewRevision) || 0);
    return true;
  }

  sendTrustBundle(): void {
    if (!this.ended) send(this.stream, { trustBundle: this.trust.bundleMessage() });
  }

  /** A CSR for the cluster's intermediate CA or the agent's channel certificate, always for the session's cluster. */
  private async onCsr(what: 'intermediate' | 'agent', csrPem: string): Promise<void> {
    try {
      if (what === 'agent' && !this.secure) throw new CsrRejected('agent certificates are for mTLS sessions; this hub runs with --insecure-channel');
      const issued = what === 'intermediate' ? await this.trust.signIntermediate(this.cluster, csrPem) : await this.trust.signAgentCert(this.cluster, csrPem);
      send(this.stream, what === 'intermediate' ? { intermediate: issued } : { agentCert: issued });
    } catch (err) {
      const message =
        err instanceof CsrRejected ? `${what === 'intermediate' ? 'intermediate CA' : 'agent certificate'} CSR refused: ${err.message}` : `cannot issue the ${what} certificate: ${errorMessage(err)}`;
      log.warn('CSR refused', { cluster: this.cluster, what, message });
      send(this.stream, { csrRejected: { what, message } });
    }
  }

  reject(code: string, message: string): void {
    log.warn('agent rejected', { cluster: this.cluster, code, message });
    send(this.stream, { rejected: { code, message } });
    this.stream.end();
    this.end();
  }

  /** Ends the stream with status UNAVAILABLE (not a rejection: the agent retries elsewhere at once). */
  unavailable(details: string): void {
    if (!this.stream.destroyed) this.stream.emit('error', { code: 14, details });
    this.end();
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    if (this.attached) this.feed.detach(this, this.hello.importNamespaces);
    this.queue = [];
    this.queueHead = 0;
    this.queued = 0;
    if (!this.stream.destroyed) this.stream.end();
    const wasCurrent = this.isCurrent(this);
    this.onEnd(this);
    // A replaced session must not mark the cluster disconnected under its successor.
    if (wasCurrent) this.liveness.disconnected(this.cluster);
    log.info('agent disconnected', { cluster: this.cluster });
  }

  private serialize(fn: () => Promise<unknown>): void {
    this.chain = this.chain.then(fn).catch((err: unknown) => {
      log.error('agent session write failed', { cluster: this.cluster, error: errorMessage(err) });
    });
  }

  private async onReport(r: Report): Promise<void> {
    const generation = Number(r.generation);
    // objects_json set means a full report (older agents do not set `full`).
    const full = r.full || !!r.objectsJson;
    let objects: ApiObject[];
    let deletes: ObjectRef[] = [];
    try {
      objects = this.checkObjects(full ? (r.objectsJson ?? '[]') : (r.upsertsJson ?? '[]'));
      if (!full) deletes = this.checkDeletes(r.deletesJson ?? '[]');
    } catch (err) {
      this.reject('InvalidReport', errorMessage(err));
      return;
    }
    const cluster = await this.store.get({ kind: 'Cluster', name: this.cluster });
    if (!cluster) return this.reject('ClusterDeleted', `cluster "${this.cluster}" was deleted at the hub`);
    if (!full && !this.fullReceived) {
      return this.reject('ProtocolError', 'the first report of a connection must be full');
    }
    this.generation = generation;
    // The generation is kept in the session (GET /agents), not in the Cluster's
    // status: writing it there would push the Cluster to every agent per report.
    const revision = full ? await replaceClusterReport(this.store, this.cluster, objects) : await applyClusterDelta(this.store, objects, deletes);
    if (full) this.fullReceived = true;
    send(this.stream, { reportAck: { generation, revision } });
  }

  private onProxyStatus(json: string, viewRevision: number, identitiesJson: string | undefined): void {
    if (identitiesJson) {
      try {
        const ids = JSON.parse(identitiesJson) as unknown;
        if (!Array.isArray(ids)) throw new Error('not a JSON array');
        this.identities = ids as WorkloadCertReport[];
      } catch (err) {
        log.warn('bad workload certificate report from agent', { cluster: this.cluster, error: errorMessage(err) });
      }
    }
    if (!/^\s*\[/.test(json)) {
      log.warn('bad proxy status from agent', { cluster: this.cluster, error: 'not a JSON array' });
      return;
    }
    this.onProxies(this.cluster, { at: new Date().toISOString(), viewRevision, json });
  }

  /** Deleted keys must name this cluster's reportable objects. */
  private checkDeletes(json: string): ObjectRef[] {
    const raw: unknown = JSON.parse(json);
    if (!Array.isArray(raw)) throw new Error('deletes must be a JSON array of object keys');
    return raw.map((k, i) => {
      const ref = typeof k === 'string' ? parseKey(k) : undefined;
      if (!ref || !REPORT_KINDS.has(ref.kind) || ref.cluster !== this.cluster) {
        throw new Error(`report delete ${i}: ${JSON.stringify(k)} is not a Service or Workload of cluster "${this.cluster}"`);
      }
      return ref;
    });
  }

  /** Every reported object must be valid, of a reportable kind, and of this cluster. */
  private checkObjects(json: string): ApiObject[] {
    const raw: unknown = JSON.parse(json);
    if (!Array.isArray(raw)) throw new Error('report must be a JSON array of objects');
    const seen = new Set<string>();
    return raw.map((doc, i) => {
      const r = validateObject(doc);
      if (!r.ok) throw new Error(`report object ${i} (${r.object ?? '?'}): ${r.errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`);
      const o = r.value;
      if (!REPORT_KINDS.has(o.kind)) throw new Error(`report object ${i}: agents may not report ${o.kind}`);
      if (clusterOf(o) !== this.cluster) {
        throw new Error(`report object ${i}: ${o.kind} ${o.metadata.name} names cluster "${clusterOf(o) ?? ''}", not "${this.cluster}"`);
      }
      const key = keyOf(refOf(o));
      if (seen.has(key)) throw new Error(`report object ${i}: ${key} is reported twice`);
      seen.add(key);
      return o;
    });
  }

  /** The feed hands over a view group (shared bytes): queue it, write as the stream takes it. */
  deliver(group: ViewGroup): void {
    if (this.ended || this.resyncing) return;
    for (const m of group.msgs) {
      this.queue.push(m);
      this.queued += m.length;
    }
    this.lastRevisionSent = Math.max(this.lastRevisionSent, group.revision);
    if (this.queued > Math.max(MAX_QUEUED, 3 * this.feed.largestFullBytes)) return this.resync();
    this.pump();
  }

  /** Writes queued messages while less than WRITE_WINDOW is in the stream's hands (back pressure per agent). */
  private pump(): void {
    while (this.inflight < WRITE_WINDOW && this.queueHead < this.queue.length) {
      if (this.ended || this.stream.destroyed || !this.stream.writable) return;
      const m = this.queue[this.queueHead]!;
      this.queue[this.queueHead++] = EMPTY;
      this.queued -= m.length;
      this.inflight += m.length;
      this.stream.write(m, () => {
        this.inflight -= m.length;
        this.pump();
      });
    }
    if (this.queueHead === this.queue.length) {
      this.queue = [];
      this.queueHead = 0;
    } else if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.queueHead);
      this.queueHead = 0;
    }
  }

  /**
   * The agent does not keep up: drop its backlog (held Buffers are shared, but
   * would pin every change since it stalled) and send it a fresh full view
   * instead, which replaces whatever it holds, a half-received group included.
   */
  private resync(): void {
    log.warn('agent is too slow for its view backlog: sending it a fresh full view instead', { cluster: this.cluster, queuedBytes: this.queued });
    this.resyncing = true;
    this.queue = [];
    this.queueHead = 0;
    this.queued = 0;
    this.feed.detach(this, this.hello.importNamespaces);
    // Not from inside the feed's delivery loop over this scope's sessions.
    setImmediate(() => {
      this.resyncing = false;
      if (!this.ended) this.feed.attach(this, this.hello.importNamespaces, 0);
    });
  }
}

const EMPTY = Buffer.alloc(0);

function topologyMismatch(c: Cluster, h: Hello): string | undefined {
  const problems: string[] = [];
  if (h.network && h.network !== c.spec.network) problems.push(`network is "${c.spec.network}" at the hub, agent says "${h.network}"`);
  if (h.region && h.region !== c.spec.region) problems.push(`region is "${c.spec.region}" at the hub, agent says "${h.region}"`);
  const extra = (h.zones ?? []).filter((z) => !c.spec.zones.includes(z));
  if (extra.length > 0) problems.push(`zones ${extra.join(',')} are not in the Cluster's spec.zones (${c.spec.zones.join(',')})`);
  return problems.length ? `cluster "${c.metadata.name}": ${problems.join('; ')}` : undefined;
}
