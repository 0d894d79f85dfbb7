// The agent for one cluster: discovers local workloads, reports them to the hub,
// receives the view of every cluster, compiles the federated view for its
// cluster and serves it as xDS to the local data plane.
//
// Level-triggered and incremental: every change (local discovery, hub view)
// marks the global services it touches; a recompute re-federates and
// re-translates only those, from state, and hands the xDS server exactly the
// resources that changed. The cost of a change follows what it affects, not the
// fleet's size. The hub's view is journaled on disk, so a restarted agent serves
// even while the hub is away.
import type { Server } from 'node:http';
import { keyOf, meshSettings, parseKey, refOf, type ApiObject, type Cluster, type Mesh, type MtlsMode, type Service, type Workload } from '../api/index.js';
import { RegistrationSource } from '../discovery/registration.js';
import { mergeStates, type DiscoveryDelta, type DiscoverySource } from '../discovery/source.js';
import { FederationIndex } from '../federation/incremental.js';
import { globalKey } from '../federation/federate.js';
import { selectedNames, viewIdentities, type PolicyObject } from '../policies/common.js';
import type { ServerContext, WorkloadIdentityRef } from '../policies/plugin.js';
import type { FederatedView } from '../federation/types.js';
import { serverPoliciesActive, serverPoliciesReadWorkloads, serverPolicyFilters, translateServerListener, translateService } from '../translate/xds/index.js';
import type { GlobalService } from '../federation/types.js';
import { AdsServer } from '../xds/ads-server.js';
import { describeListenError, formatHostPort, type HostPort } from '../util/address.js';
import { logger } from '../util/log.js';
import { memoryMB } from '../util/memory.js';
import { HubConnection, type ViewUpdate } from './hub-connection.js';
import { createAgentHttpServer } from './http-api.js';
import { summarizeProxies, type ProxySummary } from './proxy-status.js';
import { ViewJournal } from './view-journal.js';
import { WorkloadIdentity } from './workload-identity.js';
import { AgentTrust, type AgentTrustStatus } from './trust.js';
import { type XdsResource, RESOURCE_TYPES } from '../xdsapi/index.js';
import { pluginOf, POLICY_KINDS, policySet } from '../registry.js';
import { type PolicySet } from '../policies/plugin.js';
import { listenerTarget, unknownTarget } from '../translate/xds/index.js';
import { serviceMode, type SecuritySettings } from '../api/index.js';

const log = logger('agent');
/** Longest stretch of translation work per event-loop turn (ms). */
const SLICE_MS = 50;
export const AGENT_VERSION = '0.1.0';

/**
 * Minimum time between two access-policy refreshes of the server listeners.
 * grpc-js-xds servers switch listeners by draining the old connections; a
 * connection whose TLS handshake straddles a switch escapes the drain and keeps
 * the old RBAC until it closes (observed with 1.14.1). Clients reconnect right
 * after a switch, so a second switch within a few ms (two policies deleted one
 * after the other) could strand them: changes in a burst are applied together.
 */
const ACCESS_REFRESH_SPACING_MS = 250;

export interface AgentOptions {
  cluster: string;
  /** Topology asserted against the hub's Cluster object; taken from it when unset. */
  network?: string;
  region?: string;
  zones?: string[];
  hub: string;
  xds: HostPort;
  api: HostPort;
  dataDir: string;
  /** Namespaces to import from other clusters (empty: all). */
  importNamespaces?: string[];
  /** xDS push coalescing: window and maximum delay (ms). */
  pushDebounceMs?: number;
  pushMaxDelayMs?: number;
  /** How often proxy sync state is sent to the hub (ms). */
  proxyStatusIntervalMs?: number;
  /** One-time join token (first start, or to rejoin); a secret, never logged. */
  joinToken?: string;
  /** Plaintext hub channel without a client certificate (a hub with --insecure-channel). */
  insecureChannel?: boolean;
}

export interface AgentStatus {
  cluster: string;
  ready: boolean;
  notReadyReason?: string;
  hub: ReturnType<HubConnection['status']>;
  viewRevision: number;
  viewSource: 'none' | 'disk' | 'hub';
  xds: string;
  api: string;
  push: { debounceMs: number; maxDelayMs: number };
  resources: { listeners: number; routes: number; clusters: number; endpoints: number };
  federation: { services: number; conflicts: string[] };
  recompute: { count: number; lastServices: number; lastMs: number };
  trust: AgentTrustStatus;
  /** process.memoryUsage(), MB. */
  memory: Record<string, number>;
}

const TYPE_KEYS: Record<string, keyof AgentStatus['resources']> = {
  'type.googleapis.com/envoy.config.listener.v3.Listener': 'listeners',
  'type.googleapis.com/envoy.config.route.v3.RouteConfiguration': 'routes',
  'type.googleapis.com/envoy.config.cluster.v3.Cluster': 'clusters',
  'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment': 'endpoints',
};

export class Agent {
  readonly registrations: RegistrationSource;
  private readonly sources: DiscoverySource[];
  /** This cluster's discovered objects, by key. */
  private local = new Map<string, ApiObject>();
  /** The hub's view, by key. */
  private view = new Map<string, ApiObject>();
  /** The view's Clusters and Mesh (the topology), kept apart so a topology change does not walk the view. */
  private clusters = new Map<string, Cluster>();
  private meshes = new Map<string, Mesh>();
  private viewRevision = 0;
  private viewSource: AgentStatus['viewSource'] = 'none';
  /** A full view came and the changes made since it was built are still on their way. */
  private catchingUp = false;
  private journal: ViewJournal | undefined;
  private readonly fed = new FederationIndex();
  /** TrafficPolicy and FailoverPolicy objects of the view, by key; the set is rebuilt when one changes. */
  private policies = new Map<string, PolicyObject>();
  private policyCache: PolicySet | undefined;
  /** global service key -> the resources it produced: type (index in RESOURCE_TYPES) and name of each */
  private produced = new Map<string, { types: Uint8Array; names: string[] }>();
  /** Global services federated but not translated yet (undefined: removed), in order; worked off in slices. */
  private work = new Map<string, GlobalService | undefined>();
  private workScheduled = false;
  private resourceCounts = { listeners: 0, routes: 0, clusters: 0, endpoints: 0 };
  private topologyDirty = true;
  private ready = false;
  private notReadyReason = 'waiting for the first view from the hub';
  private recomputeScheduled = false;
  private recomputeStats = { count: 0, lastServices: 0, lastMs: 0 };
  private proxyTimer: NodeJS.Timeout | undefined;
  private lastProxyReport = '';
  /** mTLS settings from the Mesh; a change re-translates every service and server listener. */
  private security: SecuritySettings | undefined;
  private securityFingerprint = '';
  /** AccessPolicies or the Mesh's access default changed: server listeners are re-evaluated at the next recompute. */
  private accessDirty = false;
  private accessDefault: 'ALLOW' | 'DENY' = 'ALLOW';
  /** Workloads of the view for label sources, computed once per recompute (only when a policy has labels). */
  private accessEndpoints: WorkloadIdentityRef[] | undefined;
  private lastAccessRefresh = -Infinity;
  private accessRefreshTimer: NodeJS.Timeout | undefined;
  /** Services were re-translated since server listeners were last re-evaluated for access. */
  private touchedSinceAccess = false;
  identity: WorkloadIdentity | undefined;
  readonly ads: AdsServer;
  /** The cluster's intermediate CA and the trust bundle (current(), onChange(), status()). */
  readonly trust: AgentTrust;
  private hub: HubConnection;
  private http: Server | undefined;
  xdsAddress: HostPort;
  apiAddress: HostPort;

  constructor(readonly opts: AgentOptions) {
    this.xdsAddress = opts.xds;
    this.apiAddress = opts.api;
    this.registrations = new RegistrationSource(opts.dataDir, { cluster: opts.cluster, zones: () => this.zones() });
    this.sources = [this.registrations];
    this.ads = new AdsServer({
      serverListener: (name) =>
        translateServerListener(
          name,
          (address, port) => this.serverMode(address, port),
          (address, port, mode) => this.serverAccess(address, port, mode),
        ),
      log: (m) => log.debug(m),
      debounceMs: opts.pushDebounceMs ?? 0,
      maxDelayMs: opts.pushMaxDelayMs ?? 100,
    });
    const trustOpts: ConstructorParameters<typeof AgentTrust>[0] = { cluster: opts.cluster, dataDir: opts.dataDir, hubAddress: opts.hub, insecureChannel: opts.insecureChannel === true };
    if (opts.joinToken) trustOpts.joinToken = opts.joinToken;
    this.trust = new AgentTrust(trustOpts);
    const hubOpts: ConstructorParameters<typeof HubConnection>[0] = {
      hubAddress: opts.hub,
      hello: {
        cluster: opts.cluster,
        network: opts.network ?? '',
        region: opts.region ?? '',
        zones: opts.zones ?? [],
        agentVersion: AGENT_VERSION,
      },
      viewRevision: () => this.viewRevision,
      onView: (v) => this.onView(v),
      report: () => [...this.local.values()],
      trust: this.trust,
    };
    if (!opts.insecureChannel) hubOpts.credentials = () => this.trust.channelCredentials();
    if (opts.importNamespaces?.length) hubOpts.importNamespaces = opts.importNamespaces;
    this.hub = new HubConnection(hubOpts);
  }

  static async start(opts: AgentOptions): Promise<Agent> {
    const agent = new Agent(opts);
    try {
      await agent.run();
    } catch (err) {
      await agent.stop();
      throw err;
    }
    return agent;
  }

  private async run(): Promise<void> {
    await this.trust.load();
    // Nothing listens yet: a missing token or an expired certificate without a new token stops the start here.
    const plan = this.trust.joinPlan();
    if (plan instanceof Error) throw plan;
    const { journal, saved } = await ViewJournal.open(this.opts.dataDir, this.opts.cluster);
    this.journal = journal;
    if (saved.revision > 0) {
      this.view = saved.objects;
      this.viewRevision = saved.revision;
      this.viewSource = 'disk';
      for (const [k, o] of this.view) this.indexRemote(trimForView(o), k);
    }
    this.identity = await WorkloadIdentity.open(this.opts.dataDir, this.opts.cluster, this.trust, () => meshSettings(this.meshObject()));
    for (const s of this.sources) await s.start((_state, delta) => this.onLocalChange(this.sources.length === 1 ? delta : undefined));
    this.onLocalChange();
    const xdsPort = await this.ads.listen(this.opts.xds.host, this.opts.xds.port).catch((err: unknown) => {
      throw describeListenError(err, 'agent xDS server', formatHostPort(this.opts.xds));
    });
    this.xdsAddress = { host: this.opts.xds.host, port: xdsPort };
    this.http = createAgentHttpServer(this);
    await new Promise<void>((resolve, reject) => {
      this.http!.once('error', (err) => reject(describeListenError(err, 'agent API', formatHostPort(this.opts.api))));
      this.http!.listen(this.opts.api.port, this.opts.api.host, () => resolve());
    });
    this.apiAddress = { host: this.opts.api.host, port: (this.http.address() as { port: number }).port };
    this.recompute();
    if (plan === 'join') {
      void this.trust.joinLoop().then((ok) => {
        if (ok) this.hub.start();
      });
    } else this.hub.start();
    this.proxyTimer = setInterval(() => this.reportProxies(), this.opts.proxyStatusIntervalMs ?? 2000);
    this.proxyTimer.unref();
    log.info('agent started', {
      cluster: this.opts.cluster,
      xds: formatHostPort(this.xdsAddress),
      api: `http://${formatHostPort(this.apiAddress)}`,
      hub: this.opts.hub,
      view: this.viewSource === 'disk' ? `revision ${this.viewRevision} from disk` : 'none yet',
    });
  }

  async stop(): Promise<void> {
    if (this.proxyTimer) clearInterval(this.proxyTimer);
    this.trust.stop();
    if (this.accessRefreshTimer) clearTimeout(this.accessRefreshTimer);
    this.hub.stop();
    await this.journal?.close();
    for (const s of this.sources) await s.stop();
    await this.ads.close();
    if (this.http) {
      this.http.closeAllConnections();
      await new Promise<void>((r) => this.http!.close(() => r()));
    }
  }

  /** This cluster's Cluster object as the hub knows it. */
  clusterObject(): Cluster | undefined {
    return this.view.get(keyOf({ kind: 'Cluster', name: this.opts.cluster })) as Cluster | undefined;
  }

  meshObject(): Mesh | undefined {
    return this.meshes.values().next().value;
  }

  /**
   * mTLS mode of a server listening at address:port: the mode of the service
   * whose local workload listens there; the mesh's mode for an unknown address.
   */
  private serverMode(address: string, port: number): MtlsMode {
    const w = this.localWorkloadAt(address, port);
    if (w) return serviceMode(this.security, w.metadata.namespace!, w.spec.service);
    return this.security?.mode ?? 'DISABLE';
  }

  /** Re-evaluates the server listeners now, or with the next changes once ACCESS_REFRESH_SPACING_MS passed since the last time. */
  private refreshAccess(): void {
    const wait = this.lastAccessRefresh + ACCESS_REFRESH_SPACING_MS - performance.now();
    if (wait <= 0) {
      this.lastAccessRefresh = performance.now();
      this.ads.refreshServerListeners();
      return;
    }
    if (this.accessRefreshTimer) return;
    this.accessRefreshTimer = setTimeout(() => {
      this.accessRefreshTimer = undefined;
      this.lastAccessRefresh = performance.now();
      this.ads.refreshServerListeners();
    }, wait);
    this.accessRefreshTimer.unref();
  }

  /** Whether any server-side policy (an AccessPolicy, a deny-all default) can put filters on server listeners. */
  private accessActive(): boolean {
    return serverPoliciesActive(this.policySet(), { accessDefault: this.accessDefault });
  }

  /** The local workload registered at address:port, if any. */
  private localWorkloadAt(address: string, port: number): Workload | undefined {
    for (const o of this.local.values()) {
      if (o.kind !== 'Workload') continue;
      const w = o as Workload;
      if (w.spec.address === address && Object.values(w.spec.ports ?? {}).includes(port)) return w;
    }
    return undefined;
  }

  /**
   * RBAC filters (AccessPolicies, the Mesh's access default) for the server
   * listening at address:port. An address with no registered workload gets
   * only the default (DENY: deny-all until it is registered).
   */
  private serverAccess(address: string, port: number, mode: MtlsMode): Record<string, unknown>[] {
    if (!this.accessActive()) return [];
    const w = this.localWorkloadAt(address, port);
    const target = w ? listenerTarget(w, port, this.fed.get(w.metadata.namespace!, w.spec.service), mode) : unknownTarget(this.opts.cluster, mode);
    const ctx: ServerContext = {
      trustDomain: this.security?.trustDomain ?? meshSettings(undefined).trustDomain,
      accessDefault: this.accessDefault,
      identities: () => (this.accessEndpoints ??= viewIdentities(this.fed.view())),
    };
    return serverPolicyFilters(this.policySet(), ctx, target);
  }

  /** Security settings from the Mesh; when they change every service and server listener is re-translated. */
  private refreshSecurity(): void {
    const m = meshSettings(this.meshObject());
    const next: SecuritySettings = { trustDomain: m.trustDomain, mode: m.mtlsMode, serviceModes: m.serviceModes };
    const fp = JSON.stringify([next.trustDomain, next.mode, [...next.serviceModes].sort()]);
    if (fp === this.securityFingerprint) return;
    this.securityFingerprint = fp;
    this.security = next;
    this.fed.touchAll();
    this.ads.refreshServerListeners();
  }

  zones(): string[] {
    return this.opts.zones?.length ? this.opts.zones : (this.clusterObject()?.spec.zones ?? []);
  }

  locality(zone?: string): { region: string; zone: string; subZone: string } {
    const c = this.clusterObject();
    return { region: this.opts.region || c?.spec.region || '', zone: zone ?? this.zones()[0] ?? '', subZone: this.opts.cluster };
  }

  federatedView(): FederatedView {
    return this.fed.view();
  }

  proxies(): ProxySummary[] {
    return summarizeProxies(this.ads.proxies());
  }

  get currentViewRevision(): number {
    return this.viewRevision;
  }

  status(): AgentStatus {
    const s: AgentStatus = {
      cluster: this.opts.cluster,
      ready: this.ready,
      hub: this.hub.status(),
      viewRevision: this.viewRevision,
      viewSource: this.viewSource,
      xds: formatHostPort(this.xdsAddress),
      api: formatHostPort(this.apiAddress),
      push: { debounceMs: this.opts.pushDebounceMs ?? 0, maxDelayMs: this.opts.pushMaxDelayMs ?? 100 },
      resources: this.resourceCounts,
      federation: { services: this.fed.size, conflicts: this.fed.conflicts() },
      recompute: this.recomputeStats,
      trust: this.trust.status(),
      memory: memoryMB(),
    };
    // Until it has joined, why the agent cannot join is why it is not connected.
    if (!s.hub.connected && !s.hub.lastError && s.trust.lastError) s.hub.lastError = s.trust.lastError;
    if (!this.ready) s.notReadyReason = this.notReadyReason;
    return s;
  }

  /**
   * Local discovery changed. With the source's delta (what exactly changed) the
   * cost follows the change; without one, the whole state is diffed against
   * what we had (objects a source did not replace are skipped by identity).
   * Either way only the difference is indexed and reported.
   */
  private onLocalChange(delta?: DiscoveryDelta): void {
    const upserts: ApiObject[] = [];
    const deletes: string[] = [];
    if (delta) {
      for (const o of delta.upserts) {
        const k = keyOf(refOf(o));
        if (this.local.get(k) === o) continue;
        this.local.set(k, o);
        upserts.push(o);
      }
      for (const k of delta.deletes) if (this.local.delete(k)) deletes.push(k);
    } else {
      const next = new Map<string, ApiObject>();
      const state = mergeStates(this.sources.map((s) => s.current()));
      for (const o of [...state.services, ...state.workloads]) next.set(keyOf(refOf(o)), o);
      for (const [k, o] of next) {
        const prev = this.local.get(k);
        if (prev === o) continue;
        if (!prev || JSON.stringify(prev) !== JSON.stringify(o)) upserts.push(o);
      }
      for (const k of this.local.keys()) if (!next.has(k)) deletes.push(k);
      if (upserts.length === 0 && deletes.length === 0) return;
      this.local = next;
    }
    if (upserts.length === 0 && deletes.length === 0) return;
    for (const o of upserts) this.indexLocal(o);
    for (const k of deletes) this.unindex(parseKey(k));
    this.hub.reportChanges(upserts, deletes);
    // Per-service mTLS modes: which service listens at an address may have changed.
    if (this.security?.serviceModes.size) this.ads.refreshServerListeners();
    // So may the AccessPolicies that select the workload at an address (at the next recompute).
    if (this.accessActive()) this.accessDirty = true;
    this.scheduleRecompute();
  }

  private onView(v: ViewUpdate): void {
    if (v.full) {
      this.view = new Map(v.upserts.map((o) => [keyOf(refOf(o)), trimForView(o)]));
      this.fed.clear();
      this.policies.clear();
      this.policyCache = undefined;
      this.clusters.clear();
      this.meshes.clear();
      for (const [k, o] of this.view) this.indexRemote(o, k);
      for (const [k, o] of this.local) this.indexLocal(o, k);
      this.topologyDirty = true;
      void this.journal?.replace(v.revision, this.view, v.upsertsJson);
    } else {
      for (const o of v.upserts) {
        const k = keyOf(refOf(o));
        this.view.set(k, trimForView(o));
        this.indexRemote(o, k);
      }
      for (const k of v.deletes) {
        const ref = parseKey(k);
        this.view.delete(k);
        if (POLICY_KINDS.has(ref.kind)) this.setPolicy(k, undefined);
        else if (ref.kind === 'Cluster' || ref.kind === 'Mesh') {
          if (ref.kind === 'Cluster') this.clusters.delete(k);
          else this.meshes.delete(k);
          this.topologyDirty = true;
        } else if (ref.cluster !== this.opts.cluster) this.unindex(ref);
      }
      if (v.upserts.length > 0 || v.deletes.length > 0) {
        void this.journal?.append(v.revision, v.upserts.map((o) => [keyOf(refOf(o)), o]), v.deletes, () => this.view);
      }
    }
    this.viewRevision = v.revision;
    // A full view may be followed by the changes since it was built: until they
    // are in, the copy is partial. Keep serving what we had (from disk, or the
    // previous connection) and recompute once it is complete.
    if (v.full) this.catchingUp = !v.caughtUp;
    else if (v.caughtUp) this.catchingUp = false;
    if (this.catchingUp) {
      this.notReadyReason = `catching up with the hub (view revision ${v.revision})`;
      return;
    }
    this.viewSource = 'hub';
    this.scheduleRecompute();
  }

  /** Feeds an object of the hub's view into the index; this cluster's own objects come from local discovery. */
  private indexRemote(o: ApiObject, key?: string): void {
    if (POLICY_KINDS.has(o.kind)) {
      this.setPolicy(keyOf(refOf(o)), o as unknown as PolicyObject);
      return;
    }
    if (o.kind === 'Cluster' || o.kind === 'Mesh') {
      if (o.kind === 'Cluster') this.clusters.set(keyOf(refOf(o)), o as Cluster);
      else this.meshes.set(keyOf(refOf(o)), o as Mesh);
      this.topologyDirty = true;
      return;
    }
    if (o.metadata.cluster === this.opts.cluster) {
      // The hub's copy of a local Service carries the age the hub gave it: use it
      // for the oldest-export rule so every agent sees the same ages.
      const mine = this.local.get(keyOf(refOf(o)));
      if (mine && o.kind === 'Service') this.fed.upsertService(withSince(mine as Service, o.metadata.creationTimestamp));
      return;
    }
    if (o.kind === 'Service') this.fed.upsertService(o as Service);
    else if (o.kind === 'Workload') this.fed.upsertWorkload(o as Workload, key);
  }

  /**
   * A policy changed: the services it selected before and selects now are
   * recomputed (only those; a policy without service names touches its namespace).
   */
  private setPolicy(key: string, next: PolicyObject | undefined): void {
    const prev = this.policies.get(key);
    if (next) this.policies.set(key, next);
    else if (!this.policies.delete(key)) return;
    this.policyCache = undefined;
    // Server-side policies (AccessPolicy) change server listeners, not the client resources of the services.
    if (pluginOf((next ?? prev)!.kind)?.enforcedBy === 'server') {
      this.accessDirty = true;
      return;
    }
    for (const p of [prev, next]) {
      if (!p?.metadata.namespace) continue;
      const names = selectedNames(p);
      if (names) for (const n of names) this.fed.touch(globalKey(p.metadata.namespace, n));
      else this.fed.touchNamespace(p.metadata.namespace);
    }
  }

  /** The policies of the view, oldest first (what translation resolves per service). */
  policySet(): PolicySet {
    return (this.policyCache ??= policySet(this.policies.values()));
  }

  private indexLocal(o: ApiObject, key?: string): void {
    if (o.kind === 'Service') {
      const atHub = this.view.get(keyOf(refOf(o)))?.metadata.creationTimestamp;
      // Not at the hub yet: it is the newest export, so it cannot displace an older one.
      this.fed.upsertService(withSince(o as Service, atHub ?? new Date().toISOString()));
    } else if (o.kind === 'Workload') this.fed.upsertWorkload(o as Workload, key);
  }

  private unindex(ref: ReturnType<typeof parseKey>): void {
    if (ref.kind === 'Service') this.fed.removeService(ref);
    else if (ref.kind === 'Workload') this.fed.removeWorkload(ref);
  }

  private scheduleRecompute(): void {
    if (this.recomputeScheduled) return;
    this.recomputeScheduled = true;
    // Everything that arrives in this turn of the event loop is one recompute.
    setImmediate(() => {
      this.recomputeScheduled = false;
      this.recompute();
    });
  }

  /** Re-federates and re-translates the touched services; hands the xDS server only what changed. */
  private recompute(): void {
    if (this.viewSource === 'none' || this.catchingUp) return;
    if (!this.clusterObject()) {
      this.notReadyReason = `the hub's view has no Cluster "${this.opts.cluster}"`;
      return;
    }
    if (this.topologyDirty) {
      this.topologyDirty = false;
      this.fed.setClusters([...this.clusters.values()], this.meshes.values().next().value);
      this.refreshSecurity();
      const accessDefault = meshSettings(this.meshObject()).accessDefault;
      if (accessDefault !== this.accessDefault) {
        this.accessDefault = accessDefault;
        this.accessDirty = true;
      }
    }
    const changes = this.fed.flush();
    for (const [gk, g] of changes.changed) {
      this.work.delete(gk); // a newer result goes to the back of the queue
      this.work.set(gk, g);
    }
    for (const gk of changes.removed) {
      this.work.delete(gk);
      this.work.set(gk, undefined);
    }
    this.translateSome();
  }

  /**
   * Translates queued services for at most SLICE_MS, then yields to the event
   * loop and goes on: a full view of a large fleet (tens of thousands of
   * services) must not freeze the agent, whose streams (the hub channel's
   * keepalive, proxies' ACKs) need answers meanwhile. A service's resources
   * always go to the xDS server together. The server becomes ready (answers
   * proxies) only once the queue is empty: nothing before the state is complete.
   */
  private translateSome(): void {
    if (this.work.size === 0) return this.afterTranslate(0, 0);
    const t0 = performance.now();
    const me = this.clusterObject()!;
    const ctx = { cluster: this.opts.cluster, locality: { region: me.spec.region, zones: me.spec.zones }, policies: this.policySet(), ...(this.security ? { security: this.security } : {}) };
    const upserts: XdsResource[] = [];
    const removals: { typeUrl: string; name: string }[] = [];
    let done = 0;
    for (const [gk, g] of this.work) {
      this.work.delete(gk);
      done++;
      const next = g ? translateService(g, ctx).resources : [];
      const old = this.produced.get(gk);
      const names = new Set(next.map((r) => `${r.typeUrl}\u0000${r.name}`));
      const before = new Set<string>();
      if (old) {
        for (let i = 0; i < old.names.length; i++) {
          const typeUrl = RESOURCE_TYPES[old.types[i]!]!;
          const name = old.names[i]!;
          before.add(`${typeUrl}\u0000${name}`);
          if (!names.has(`${typeUrl}\u0000${name}`)) {
            removals.push({ typeUrl, name });
            this.resourceCounts[TYPE_KEYS[typeUrl]!]--;
          }
        }
      }
      for (const r of next) if (!before.has(`${r.typeUrl}\u0000${r.name}`)) this.resourceCounts[TYPE_KEYS[r.typeUrl]!]++;
      for (const r of next) upserts.push(r);
      if (next.length > 0) {
        this.produced.set(gk, { types: Uint8Array.from(next, (r) => RESOURCE_TYPES.indexOf(r.typeUrl as (typeof RESOURCE_TYPES)[number])), names: next.map((r) => r.name) });
      } else this.produced.delete(gk);
      if (performance.now() - t0 > SLICE_MS) break;
    }
    if (upserts.length > 0 || removals.length > 0) this.ads.applyChanges({ upserts, removals });
    if (done > 0) {
      this.accessEndpoints = undefined;
      this.touchedSinceAccess = true;
    }
    this.afterTranslate(done, performance.now() - t0);
  }

  private afterTranslate(services: number, ms: number): void {
    if (services > 0) this.recomputeStats = { count: this.recomputeStats.count + 1, lastServices: services, lastMs: Math.round(ms * 100) / 100 };
    if (this.work.size > 0) {
      if (!this.workScheduled) {
        this.workScheduled = true;
        setImmediate(() => {
          this.workScheduled = false;
          this.translateSome();
        });
      }
      return;
    }
    // Server listeners carry the RBAC of the AccessPolicies: re-evaluate them when the
    // policies or the default changed, when local registrations changed (onLocalChange),
    // or when any workload changed and a policy resolves labels to identities; only
    // listeners whose content changed are pushed.
    if (this.accessDirty || (this.touchedSinceAccess && serverPoliciesReadWorkloads(this.policySet()))) {
      this.accessDirty = false;
      this.refreshAccess();
    }
    this.touchedSinceAccess = false;
    if (!this.ready) {
      this.ads.markReady();
      this.ready = true;
      log.info('xDS snapshot complete: serving', { ...this.resourceCounts, view: this.viewSource });
    }
  }

  private reportProxies(): void {
    if (!this.hub.isConnected) {
      this.lastProxyReport = '';
      return;
    }
    // Ages change every tick; compare what matters (state and versions) to decide whether to send.
    const proxies = this.proxies();
    const identities = this.identity?.issuedCertificates() ?? [];
    const fingerprint = JSON.stringify([proxies.map((p) => [p.nodeId, Object.entries(p.types).map(([t, s]) => [t, s.state, s.sentVersion, s.ackedVersion, s.nack])]), identities.map((i) => i.serialNumber)]);
    if (fingerprint === this.lastProxyReport) return;
    this.lastProxyReport = fingerprint;
    this.hub.sendProxyStatus(proxies, this.viewRevision, identities);
  }
}

/**
 * What the agent keeps of a view object. A Workload's store metadata (uid,
 * resourceVersion, generation, creationTimestamp) is never read here and costs
 * about 150 bytes per endpoint; Services keep theirs (the oldest-export rule
 * reads creationTimestamp). Modifies and returns the object (fresh from parsing).
 */
function trimForView(o: ApiObject): ApiObject {
  if (o.kind === 'Workload') {
    const { uid: _u, resourceVersion: _r, generation: _g, creationTimestamp: _c, ...rest } = o.metadata;
    o.metadata = rest; // a new object: deleting properties would leave the old one's size (or make it slower)
  }
  return o;
}

function withSince(s: Service, since: string | undefined): Service {
  return since ? { ...s, metadata: { ...s.metadata, creationTimestamp: since } } : s;
}
