// The agent for one cluster: discovers local workloads, reports them to the hub,
// receives the view of every cluster, compiles the federated view for its
// cluster and serves it as xDS to the local data plane.
//
// Level-triggered: every change (local discovery, hub view) recomputes the
// federated view and the xDS resources from state. The last view from the hub is
// persisted, so a restarted agent serves even while the hub is away.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { keyOf, refOf, type ApiObject, type Cluster, type Mesh, type Service, type Workload } from '../api/index.js';
import { RegistrationSource } from '../discovery/registration.js';
import { mergeStates, type DiscoveredState, type DiscoverySource } from '../discovery/source.js';
import { federate } from '../federation/federate.js';
import type { FederatedView } from '../federation/types.js';
import { translateClient, translateServerListener } from '../translate/xds/index.js';
import { AdsServer } from '../xds/ads-server.js';
import { describeListenError, formatHostPort, type HostPort } from '../util/address.js';
import { writeFileDurable } from '../util/files.js';
import { logger } from '../util/log.js';
import { HubConnection, type ViewUpdate } from './hub-connection.js';
import { createAgentHttpServer } from './http-api.js';
import type { Server } from 'node:http';

const log = logger('agent');
export const AGENT_VERSION = '0.1.0';

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
  resources: { listeners: number; routes: number; clusters: number; endpoints: number };
  federation: { services: number; conflicts: string[] };
}

export class Agent {
  readonly registrations: RegistrationSource;
  private readonly sources: DiscoverySource[];
  private local: DiscoveredState = { services: [], workloads: [] };
  private view = new Map<string, ApiObject>();
  private viewRevision = 0;
  private viewSource: AgentStatus['viewSource'] = 'none';
  private ready = false;
  private notReadyReason = 'waiting for the first view from the hub';
  private federated: FederatedView = { clusters: [], services: [] };
  private resourceCounts = { listeners: 0, routes: 0, clusters: 0, endpoints: 0 };
  private persistTimer: NodeJS.Timeout | undefined;
  private persisting: Promise<void> = Promise.resolve();
  readonly ads: AdsServer;
  private hub: HubConnection;
  private http: Server | undefined;
  xdsAddress: HostPort;
  apiAddress: HostPort;

  constructor(readonly opts: AgentOptions) {
    this.xdsAddress = opts.xds;
    this.apiAddress = opts.api;
    this.registrations = new RegistrationSource(opts.dataDir, { cluster: opts.cluster, zones: () => this.zones() });
    this.sources = [this.registrations];
    this.ads = new AdsServer({ serverListener: (name) => translateServerListener(name), log: (m) => log.debug(m) });
    this.hub = new HubConnection({
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
      report: () => [...this.local.services, ...this.local.workloads],
    });
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
    await this.loadView();
    for (const s of this.sources) {
      await s.start(() => this.onLocalChange());
    }
    this.local = mergeStates(this.sources.map((s) => s.current()));
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
    this.hub.start();
    log.info('agent started', {
      cluster: this.opts.cluster,
      xds: formatHostPort(this.xdsAddress),
      api: `http://${formatHostPort(this.apiAddress)}`,
      hub: this.opts.hub,
      view: this.viewSource === 'disk' ? `revision ${this.viewRevision} from disk` : 'none yet',
    });
  }

  async stop(): Promise<void> {
    this.hub.stop();
    if (this.persistTimer) {
      clearTimeout(this.persistTimer);
      this.persistTimer = undefined;
      this.persistView();
    }
    await this.persisting;
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

  zones(): string[] {
    return this.opts.zones?.length ? this.opts.zones : (this.clusterObject()?.spec.zones ?? []);
  }

  locality(zone?: string): { region: string; zone: string; subZone: string } {
    const c = this.clusterObject();
    return { region: this.opts.region || c?.spec.region || '', zone: zone ?? this.zones()[0] ?? '', subZone: this.opts.cluster };
  }

  federatedView(): FederatedView {
    return this.federated;
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
      resources: this.resourceCounts,
      federation: {
        services: this.federated.services.length,
        conflicts: this.federated.services.flatMap((g) => g.conflicts.map((c) => c.message)),
      },
    };
    if (!this.ready) s.notReadyReason = this.notReadyReason;
    return s;
  }

  private onLocalChange(): void {
    this.local = mergeStates(this.sources.map((s) => s.current()));
    this.recompute();
    this.hub.reportSoon();
  }

  private onView(v: ViewUpdate): void {
    if (v.full) this.view.clear();
    for (const o of v.upserts) this.view.set(keyOf(refOf(o)), o);
    for (const k of v.deletes) this.view.delete(k);
    this.viewRevision = v.revision;
    this.viewSource = 'hub';
    this.recompute();
    this.schedulePersist();
  }

  /** Recomputes the federated view and the xDS resources from state. */
  private recompute(): void {
    if (this.viewSource === 'none') return;
    const own = this.clusterObject();
    if (!own) {
      this.notReadyReason = `the hub's view has no Cluster "${this.opts.cluster}"`;
      return;
    }
    const objects = [...this.view.values()];
    const remote = <T extends ApiObject>(kind: string) =>
      objects.filter((o) => o.kind === kind && o.metadata.cluster !== this.opts.cluster) as T[];
    // Local discovery is authoritative for this cluster; the hub's copy of it may lag.
    this.federated = federate({
      clusters: objects.filter((o) => o.kind === 'Cluster') as Cluster[],
      mesh: objects.find((o) => o.kind === 'Mesh') as Mesh | undefined,
      services: [...remote<Service>('Service'), ...this.local.services.map((s) => withSince(s, this.view))],
      workloads: [...remote<Workload>('Workload'), ...this.local.workloads],
    });
    const resources = translateClient(this.federated, { cluster: this.opts.cluster });
    this.ads.setResources(resources);
    this.resourceCounts = {
      listeners: resources.listeners.size,
      routes: resources.routes.size,
      clusters: resources.clusters.size,
      endpoints: resources.endpoints.size,
    };
    if (!this.ready) log.info('xDS snapshot complete: serving', { ...this.resourceCounts, view: this.viewSource });
    this.ready = true;
  }

  private async loadView(): Promise<void> {
    const file = join(this.opts.dataDir, 'view.json');
    try {
      const saved = JSON.parse(await readFile(file, 'utf8')) as { cluster: string; revision: number; objects: ApiObject[] };
      if (saved.cluster !== this.opts.cluster) {
        throw new Error(`${file} belongs to cluster "${saved.cluster}", not "${this.opts.cluster}": use another --data-dir`);
      }
      for (const o of saved.objects) this.view.set(keyOf(refOf(o)), o);
      this.viewRevision = saved.revision;
      this.viewSource = 'disk';
    } catch (err) {
      if ((err as { code?: string }).code !== 'ENOENT') throw err;
    }
  }

  private schedulePersist(): void {
    if (this.persistTimer) return;
    this.persistTimer = setTimeout(() => {
      this.persistTimer = undefined;
      this.persistView();
    }, 100);
  }

  private persistView(): void {
    const data = JSON.stringify({ cluster: this.opts.cluster, revision: this.viewRevision, objects: [...this.view.values()] });
    this.persisting = this.persisting
      .then(() => writeFileDurable(join(this.opts.dataDir, 'view.json'), data))
      .catch((err: unknown) => log.error('cannot persist the view', { error: String(err) }));
  }
}

/** A local Service keeps the creation time the hub gave it, so the oldest-export rule sees the same ages everywhere. */
function withSince(s: Service, view: Map<string, ApiObject>): Service {
  const atHub = view.get(keyOf(refOf(s)));
  // Not at the hub yet: it is the newest export, so it cannot displace an older one.
  const since = atHub?.metadata.creationTimestamp ?? new Date().toISOString();
  return { ...s, metadata: { ...s.metadata, creationTimestamp: since } };
}
