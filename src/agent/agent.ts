// The agent for one cluster: discovers local workloads, reports them to the hub,
// receives the view of every cluster, compiles the federated view for its
// cluster and serves it as xDS to the local data plane.
//
// This file is the wiring, lifecycle and status; the parts are:
//   view-state.ts       the hub's view (journaled on disk), local objects, topology, the FederationIndex
//   compiler.ts         touched global services -> xDS resource changes, in slices; readiness
//   server-listeners.ts mTLS mode and RBAC of server listeners, and when they are re-evaluated
//   http-api.ts         the local API, through the narrow AgentApi interface
//
// Level-triggered and incremental: every change (local discovery, hub view)
// marks the global services it touches; a recompute re-federates and
// re-translates only those, from state, and hands the xDS server exactly the
// resources that changed. The cost of a change follows what it affects, not the
// fleet's size. The hub's view is journaled on disk, so a restarted agent serves
// even while the hub is away.
import type { Server } from 'node:http';
import { meshSettings } from '../api/index.js';
import { RegistrationSource } from '../discovery/registration.js';
import type { KubernetesSource, KubernetesSourceStatus } from '../discovery/kubernetes/source.js';
import type { KubernetesOptions, KubernetesParts } from './kubernetes-parts.js';
import { mergeStates, type DiscoveryDelta, type DiscoverySource } from '../discovery/source.js';
import type { FederatedView } from '../federation/types.js';
import { AdsServer } from '../xds/ads-server.js';
import { describeListenError, formatHostPort, type HostPort } from '../util/address.js';
import { logger } from '../util/log.js';
import { memoryMB } from '../util/memory.js';
import { Compiler, type RecomputeStats, type ResourceCounts } from './compiler.js';
import { HubConnection, type ViewUpdate } from './hub-connection.js';
import { AgentTokens } from '../auth/authn-agent.js';
import { createAgentHttpServer, type AgentApi } from './http-api.js';
import { summarizeProxies, type ProxySummary } from './proxy-status.js';
import { ServerListeners } from './server-listeners.js';
import { ViewState, type ViewSource } from './view-state.js';
import { WorkloadIdentity } from './workload-identity.js';
import { AgentTrust, type AgentTrustStatus } from './trust.js';
import { meshfedVersion } from '../util/version.js';
import type { KubeConfig } from '@kubernetes/client-node';
import type { McsImporter, McsImportStatus } from '../kube/mcs-importer.js';

const log = logger('agent');

function isEmpty(s: { services: unknown[]; workloads: unknown[] }): boolean {
  return s.services.length === 0 && s.workloads.length === 0;
}
export const AGENT_VERSION = meshfedVersion();

export interface AgentOptions {
  cluster: string;
  /** Topology asserted against the hub's Cluster object; taken from it when unset. */
  network?: string;
  region?: string;
  zones?: string[];
  /** The hub's agent channel, HOST:PORT; every hub replica's, comma-separated (the leader serves). */
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
  /** MCS consumer side: write ServiceImports, EndpointSlices and ServiceExport status into this Kubernetes cluster. */
  mcsImport?: { kubeConfig: KubeConfig };
  /** Kubernetes discovery (beside registration): kubeconfig file and context (default: in-cluster, KUBECONFIG, ~/.kube/config), namespaces (default all but kube-system, kube-public, kube-node-lease). */
  kubernetes?: KubernetesOptions;
}

export interface AgentStatus {
  cluster: string;
  ready: boolean;
  notReadyReason?: string;
  hub: ReturnType<HubConnection['status']>;
  viewRevision: number;
  viewSource: ViewSource;
  xds: string;
  api: string;
  push: { debounceMs: number; maxDelayMs: number };
  resources: ResourceCounts;
  federation: { services: number; conflicts: string[] };
  recompute: RecomputeStats;
  trust: AgentTrustStatus;
  /** process.memoryUsage(), MB. */
  memory: Record<string, number>;
  /** The MCS importer (with AgentOptions.mcsImport). */
  mcsImport?: McsImportStatus;
  /** Discovery sources: registrations, and the Kubernetes source when enabled. */
  discovery: { registration: { workloads: number }; kubernetes?: KubernetesSourceStatus };
}

export class Agent implements AgentApi {
  readonly registrations: RegistrationSource;
  /** The Kubernetes source, when AgentOptions.kubernetes is set. */
  readonly kubernetes: KubernetesSource | undefined;
  /** The Kubernetes client configuration (for the other parts that talk to the cluster, e.g. the MCS writer). */
  readonly kubeConfig: KubeConfig | undefined;
  private readonly sources: DiscoverySource[];
  private readonly state: ViewState;
  private readonly compiler: Compiler;
  private readonly serverListeners: ServerListeners;
  identity: WorkloadIdentity | undefined;
  readonly ads: AdsServer;
  /** The cluster's intermediate CA and the trust bundle (current(), onChange(), status()). */
  readonly trust: AgentTrust;
  private readonly hub: HubConnection;
  private http: Server | undefined;
  private tokens: AgentTokens | undefined;
  private proxyTimer: NodeJS.Timeout | undefined;
  private lastProxyReport = '';
  xdsAddress: HostPort;
  apiAddress: HostPort;
  /** Writes the MCS objects of what this cluster imports (AgentOptions.mcsImport). */
  private readonly mcsImport: McsImporter | undefined;
  /** Whether every discovery source has started (synced): not ready before. */
  private sourcesStarted = false;

  /** `kube`: the Kubernetes parts (kubernetes-parts.ts), made by start() only when configured. */
  constructor(
    readonly opts: AgentOptions,
    kube: KubernetesParts = {},
  ) {
    this.xdsAddress = opts.xds;
    this.apiAddress = opts.api;
    this.registrations = new RegistrationSource(opts.dataDir, { cluster: opts.cluster, zones: () => this.zones() });
    this.sources = [this.registrations];
    this.kubeConfig = kube.kubeConfig;
    this.kubernetes = kube.source;
    if (this.kubernetes) this.sources.push(this.kubernetes);
    this.state = new ViewState(opts.cluster, {
      accessChanged: () => this.serverListeners.accessChanged(),
      securityChanged: () => this.serverListeners.securityChanged(),
    });
    this.serverListeners = new ServerListeners(opts.cluster, this.state, () => this.ads.refreshServerListeners());
    this.ads = new AdsServer({
      serverListener: (name) => this.serverListeners.resource(name),
      log: (m) => log.debug(m),
      debounceMs: opts.pushDebounceMs ?? 0,
      maxDelayMs: opts.pushMaxDelayMs ?? 100,
    });
    this.compiler = new Compiler(opts.cluster, this.state, this.ads, {
      translated: () => this.serverListeners.translated(),
      settled: () => {
        this.serverListeners.settled();
        this.mcsImport?.update();
      },
    });
    this.mcsImport = kube.importer;
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
      viewRevision: () => this.state.viewRevision,
      onView: (v) => this.onView(v),
      report: () => this.state.localObjects(),
      trust: this.trust,
    };
    if (!opts.insecureChannel) hubOpts.credentials = () => this.trust.channelCredentials();
    if (opts.importNamespaces?.length) hubOpts.importNamespaces = opts.importNamespaces;
    this.hub = new HubConnection(hubOpts);
  }

  static async start(opts: AgentOptions): Promise<Agent> {
    const self: { agent?: Agent } = {};
    let kube: KubernetesParts = {};
    if (opts.kubernetes || opts.mcsImport) {
      const { kubernetesParts } = await import('./kubernetes-parts.js');
      kube = kubernetesParts({
        cluster: opts.cluster,
        ...(opts.kubernetes ? { kubernetes: opts.kubernetes } : {}),
        ...(opts.mcsImport ? { mcsKubeConfig: opts.mcsImport.kubeConfig } : {}),
        ...(opts.importNamespaces?.length ? { importNamespaces: opts.importNamespaces } : {}),
        // The view only once the compiler has served a complete one: an agent that has not loaded its view must not empty the cluster.
        view: () => (self.agent?.compiler.ready ? self.agent.state.fed.view() : undefined),
      });
    }
    const agent = (self.agent = new Agent(opts, kube));
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
    await this.state.open(this.opts.dataDir);
    this.identity = await WorkloadIdentity.open(this.opts.dataDir, this.opts.cluster, this.trust, () => meshSettings(this.state.meshObject()));
    // A source's delta is exact only while no other source holds objects (a Service both define
    // must not be deleted by one of them); otherwise the merged state is diffed.
    const startSource = (s: DiscoverySource) => s.start((_state, delta) => this.onLocalChange(this.sources.every((o) => o === s || isEmpty(o.current())) ? delta : undefined));
    // Registrations (from disk, at once) before the API that takes them; the API (and its probes)
    // then answers while the other sources sync, which takes a while in a large Kubernetes
    // cluster: liveness holds, and /readyz says what the agent waits for.
    await startSource(this.registrations);
    this.tokens = await AgentTokens.open(this.opts.dataDir, this.opts.cluster);
    this.http = createAgentHttpServer(this, this.tokens);
    await new Promise<void>((resolve, reject) => {
      this.http!.once('error', (err) => reject(describeListenError(err, 'agent API', formatHostPort(this.opts.api))));
      this.http!.listen(this.opts.api.port, this.opts.api.host, () => resolve());
    });
    this.apiAddress = { host: this.opts.api.host, port: (this.http.address() as { port: number }).port };
    for (const s of this.sources) if (s !== this.registrations) await startSource(s);
    this.sourcesStarted = true;
    this.onLocalChange();
    const xdsPort = await this.ads.listen(this.opts.xds.host, this.opts.xds.port).catch((err: unknown) => {
      throw describeListenError(err, 'agent xDS server', formatHostPort(this.opts.xds));
    });
    this.xdsAddress = { host: this.opts.xds.host, port: xdsPort };
    this.compiler.recompute();
    this.mcsImport?.start();
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
      view: this.state.viewSource === 'disk' ? `revision ${this.state.viewRevision} from disk` : 'none yet',
    });
  }

  async stop(): Promise<void> {
    if (this.proxyTimer) clearInterval(this.proxyTimer);
    await this.mcsImport?.stop();
    this.trust.stop();
    this.serverListeners.stop();
    this.hub.stop();
    await this.state.close();
    for (const s of this.sources) await s.stop();
    await this.ads.close();
    if (this.http) {
      this.http.closeAllConnections();
      await new Promise<void>((r) => this.http!.close(() => r()));
    }
    await this.tokens?.close();
  }

  get cluster(): string {
    return this.opts.cluster;
  }

  zones(): string[] {
    return this.opts.zones?.length ? this.opts.zones : (this.state.clusterObject()?.spec.zones ?? []);
  }

  locality(zone?: string): { region: string; zone: string; subZone: string } {
    const c = this.state.clusterObject();
    return { region: this.opts.region || c?.spec.region || '', zone: zone ?? this.zones()[0] ?? '', subZone: this.opts.cluster };
  }

  federatedView(): FederatedView {
    return this.state.fed.view();
  }

  proxies(): ProxySummary[] {
    return summarizeProxies(this.ads.proxies());
  }

  /** The xDS server's full per-stream state. */
  rawProxies(): unknown {
    return this.ads.proxies();
  }

  get currentViewRevision(): number {
    return this.state.viewRevision;
  }

  status(): AgentStatus {
    const s: AgentStatus = {
      cluster: this.opts.cluster,
      ready: this.sourcesStarted && this.compiler.ready,
      hub: this.hub.status(),
      viewRevision: this.state.viewRevision,
      viewSource: this.state.viewSource,
      xds: formatHostPort(this.xdsAddress),
      api: formatHostPort(this.apiAddress),
      push: { debounceMs: this.opts.pushDebounceMs ?? 0, maxDelayMs: this.opts.pushMaxDelayMs ?? 100 },
      resources: this.compiler.resourceCounts,
      federation: { services: this.state.fed.size, conflicts: this.state.fed.conflicts() },
      recompute: this.compiler.recomputeStats,
      trust: this.trust.status(),
      memory: memoryMB(),
      discovery: { registration: { workloads: this.registrations.current().workloads.length } },
    };
    if (this.mcsImport) s.mcsImport = this.mcsImport.status();
    if (this.kubernetes) s.discovery.kubernetes = this.kubernetes.status();
    // Until it has joined, why the agent cannot join is why it is not connected.
    if (!s.hub.connected && !s.hub.lastError && s.trust.lastError) s.hub.lastError = s.trust.lastError;
    // Not ready without a view: why the hub is not giving one is part of the reason (the /readyz answer).
    if (!this.sourcesStarted) s.notReadyReason = `waiting for discovery to sync (${this.sources.map((x) => x.name).join(', ')})`;
    else if (!s.ready) s.notReadyReason = this.compiler.notReadyReason + (!s.hub.connected && s.hub.lastError ? ` (hub: ${s.hub.lastError})` : '');
    return s;
  }

  /**
   * Local discovery changed. With the source's delta (what exactly changed) the
   * cost follows the change; without one, the whole state is diffed against
   * what we had. Either way only the difference is indexed and reported.
   */
  private onLocalChange(delta?: DiscoveryDelta): void {
    const changes = delta ? this.state.applyLocalDelta(delta) : this.state.replaceLocal(mergeStates(this.sources.map((s) => s.current())));
    if (!changes) return;
    this.hub.reportChanges(changes.upserts, changes.deletes);
    this.serverListeners.localChanged();
    this.compiler.schedule();
  }

  private onView(v: ViewUpdate): void {
    if (!this.state.applyView(v)) {
      this.compiler.notReadyReason = `catching up with the hub (view revision ${v.revision})`;
      return;
    }
    this.compiler.schedule();
  }

  private reportProxies(): void {
    if (!this.hub.isConnected) {
      this.lastProxyReport = '';
      return;
    }
    // Ages change every tick; compare what matters (state and versions) to decide whether to send.
    const proxies = this.proxies();
    const identities = this.identity?.issuedCertificates() ?? [];
    const fingerprint = JSON.stringify([
      proxies.map((p) => [p.nodeId, Object.entries(p.types).map(([t, s]) => [t, s.state, s.sentVersion, s.ackedVersion, s.nack])]),
      identities.map((i) => i.serialNumber),
    ]);
    if (fingerprint === this.lastProxyReport) return;
    this.lastProxyReport = fingerprint;
    this.hub.sendProxyStatus(proxies, this.state.viewRevision, identities);
  }
}
