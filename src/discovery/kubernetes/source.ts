// The Kubernetes discovery source: informers on Services, EndpointSlices,
// Pods, Nodes, Namespaces and MCS ServiceExports feed caches; the published
// state is recomputed from those caches (mapping.ts), never from event deltas
// alone, so a re-list or an agent restart loses nothing and invents nothing.
//
// Cost per event follows what it touches: an event marks the services it
// affects dirty (a Service or ServiceExport: itself; an EndpointSlice: its
// service, before and after a relabel; a Pod or a Node: the services whose last
// mapping read it; a Namespace: its services); a short batch recomputes only
// those and hands the agent a DiscoveryDelta. `current()` is assembled lazily.
//
// Nothing is published before every informer has synced (a first complete
// list): a partial cache would invent a state (a Service without its Pods).
// start() resolves when all have synced, or after `syncTimeoutMs` with nothing
// published and the reason in status(). When the API server goes away the
// caches keep the last state (so the agent keeps serving it) and status says
// `connected: false` since when; informers restart with backoff and resume
// from their resourceVersion (or re-list after 410 Gone).
import { CoreV1Api, CustomObjectsApi, DiscoveryV1Api, type KubeConfig } from '@kubernetes/client-node';
import { keyOf, refOf, type Service, type Workload } from '../../api/index.js';
import { describeKubeConfig } from '../../kube/config.js';
import { describePermission, type KubePermission } from '../../kube/errors.js';
import { logger } from '../../util/log.js';
import type { DiscoveredState, DiscoveryDelta, DiscoverySource } from '../source.js';
import { Informer, type InformerHealth } from './informer.js';
import { mapService, REGION_LABEL, SERVICE_NAME_LABEL, ZONE_LABEL, type CacheView } from './mapping.js';
import { Problems, type ProblemsStatus } from './problems.js';
import type { KubeEndpointSlice, KubeNamespace, KubeNode, KubeObject, KubePod, KubeService } from './types.js';

const log = logger('kubernetes');

/** Namespaces never discovered unless listed explicitly. */
export const SYSTEM_NAMESPACES = ['kube-system', 'kube-public', 'kube-node-lease'];

export interface KubernetesSourceOptions {
  cluster: string;
  kubeConfig: KubeConfig;
  /** Namespaces to discover; empty or unset: every namespace but kube-system, kube-public, kube-node-lease. */
  namespaces?: string[];
  /** How long start() waits for every informer to sync (default 60 s). */
  syncTimeoutMs?: number;
  /** Batch window for recomputing dirty services (default 2 ms). */
  batchMs?: number;
  /** Informer restart backoff (defaults 500 ms .. 30 s). */
  retryMinMs?: number;
  retryMaxMs?: number;
  /** Write a Warning Event per distinct problem (default true). */
  events?: boolean;
}

export interface KubernetesSourceStatus {
  source: 'kubernetes';
  server: string;
  context: string;
  namespaces: string[] | 'all';
  synced: boolean;
  /** Whether the API server answers; false since `since` (the last state is still served). */
  connected: boolean;
  since?: string;
  lastError?: string;
  /** Refused permissions (403), each as a ClusterRole rule would grant it. */
  forbidden: (KubePermission & { message: string })[];
  resources: { resource: string; namespace?: string; synced: boolean; count: number; absent?: boolean; lastError?: string; failingSince?: string }[];
  counts: { services: number; exported: number; workloads: number };
  /** Zones and regions of the Nodes (topology.kubernetes.io labels). */
  topology: { regions: string[]; zones: string[] };
  problems: ProblemsStatus;
}

interface Output {
  service?: Service;
  workloads: Map<string, Workload>;
  pods: string[];
  nodes: string[];
}

const nsName = (o: KubeObject): string => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;

export class KubernetesSource implements DiscoverySource {
  readonly name = 'kubernetes';
  private readonly core: CoreV1Api;
  private readonly services: Informer<KubeService>[] = [];
  private readonly slices: Informer<KubeEndpointSlice>[] = [];
  private readonly pods: Informer<KubePod>[] = [];
  private readonly exports: Informer<KubeObject>[] = [];
  private readonly nodes: Informer<KubeNode>;
  private readonly namespaceInformer: Informer<KubeNamespace>;
  private readonly all: Informer<KubeObject>[] = [];
  /** EndpointSlice (ns/name) -> its service (ns/name), and service -> its slices. */
  private readonly sliceService = new Map<string, string>();
  private readonly serviceSlices = new Map<string, Map<string, KubeEndpointSlice>>();
  /** Reverse dependencies of the last mapping: Pod (ns/name) / Node -> services. */
  private readonly podDeps = new Map<string, Set<string>>();
  private readonly nodeDeps = new Map<string, Set<string>>();
  private readonly outputs = new Map<string, Output>();
  private readonly dirty = new Set<string>();
  private batchTimer: NodeJS.Timeout | undefined;
  private onChange: ((s: DiscoveredState, d?: DiscoveryDelta) => void) | undefined;
  private publishing = false;
  private cached: DiscoveredState | undefined;
  private readonly problems: Problems;
  private readonly watched: Set<string> | undefined;
  private lastLoggedError = '';

  constructor(private readonly opts: KubernetesSourceOptions) {
    const kc = opts.kubeConfig;
    this.core = kc.makeApiClient(CoreV1Api);
    const disc = kc.makeApiClient(DiscoveryV1Api);
    const custom = kc.makeApiClient(CustomObjectsApi);
    this.watched = opts.namespaces?.length ? new Set(opts.namespaces) : undefined;
    const iopts = { onHealth: () => this.healthChanged(), retryMinMs: opts.retryMinMs ?? 500, retryMaxMs: opts.retryMaxMs ?? 30_000 };
    const scopes: (string | undefined)[] = this.watched ? [...this.watched] : [undefined];
    type Page = { limit: number; _continue?: string };
    const list = (p: Promise<unknown>): Promise<unknown> => p;
    for (const ns of scopes) {
      const scoped = ns ? { namespace: ns } : {};
      this.services.push(
        new Informer(
          kc,
          {
            group: '',
            version: 'v1',
            resource: 'services',
            ...scoped,
            list: (p: Page) => list(ns ? this.core.listNamespacedService({ namespace: ns, ...p }) : this.core.listServiceForAllNamespaces(p)),
          },
          (_t, o) => this.onService(o),
          iopts,
        ),
      );
      this.slices.push(
        new Informer(
          kc,
          {
            group: 'discovery.k8s.io',
            version: 'v1',
            resource: 'endpointslices',
            ...scoped,
            list: (p: Page) => list(ns ? disc.listNamespacedEndpointSlice({ namespace: ns, ...p }) : disc.listEndpointSliceForAllNamespaces(p)),
          },
          (t, o) => this.onSlice(t, o),
          iopts,
        ),
      );
      this.pods.push(
        new Informer(
          kc,
          { group: '', version: 'v1', resource: 'pods', ...scoped, list: (p: Page) => list(ns ? this.core.listNamespacedPod({ namespace: ns, ...p }) : this.core.listPodForAllNamespaces(p)) },
          (_t, o) => this.onPod(o),
          iopts,
        ),
      );
      const mcs = { group: 'multicluster.x-k8s.io', version: 'v1alpha1', plural: 'serviceexports' };
      this.exports.push(
        new Informer(
          kc,
          {
            group: mcs.group,
            version: mcs.version,
            resource: mcs.plural,
            ...scoped,
            optional: true,
            list: (p: Page) => list(ns ? custom.listNamespacedCustomObject({ ...mcs, namespace: ns, ...p }) : custom.listClusterCustomObject({ ...mcs, ...p })),
          },
          (_t, o) => this.mark(nsName(o)),
          iopts,
        ),
      );
    }
    this.nodes = new Informer(kc, { group: '', version: 'v1', resource: 'nodes', list: (p: Page) => list(this.core.listNode(p)) }, (_t, o) => this.onNode(o), iopts);
    this.namespaceInformer = new Informer(kc, { group: '', version: 'v1', resource: 'namespaces', list: (p: Page) => list(this.core.listNamespace(p)) }, (_t, o) => this.onNamespace(o), iopts);
    this.all.push(...this.services, ...this.slices, ...this.pods, ...this.exports, this.nodes, this.namespaceInformer);
    const uid = (kind: string, ns: string | undefined, name: string): string | undefined => {
      const find = (inf: Informer<KubeObject>[]): string | undefined => {
        for (const i of inf) {
          const o = i.get(ns, name) as KubeObject | undefined;
          if (o) return o.metadata?.uid;
        }
        return undefined;
      };
      if (kind === 'Service') return find(this.services);
      if (kind === 'EndpointSlice') return find(this.slices);
      if (kind === 'Namespace') return find([this.namespaceInformer]);
      return undefined;
    };
    this.problems = new Problems(opts.events === false ? undefined : { api: this.core, uid: (p) => uid(p.object.kind, p.object.namespace, p.object.name) });
  }

  /** Whether a namespace is discovered. */
  private discovered(ns: string): boolean {
    return this.watched ? this.watched.has(ns) : !SYSTEM_NAMESPACES.includes(ns);
  }

  private readonly view: CacheView = {
    service: (ns, name) => this.find(this.services, ns, name),
    slicesOf: (ns, name) => this.serviceSlices.get(`${ns}/${name}`)?.values() ?? [],
    pod: (ns, name) => this.find(this.pods, ns, name),
    node: (name) => this.nodes.get(undefined, name),
    namespace: (name) => this.namespaceInformer.get(undefined, name),
    serviceExport: (ns, name) => this.find(this.exports, ns, name),
  };

  private find<T extends KubeObject>(informers: Informer<T>[], ns: string, name: string): T | undefined {
    for (const i of informers) {
      if (i.spec.namespace !== undefined && i.spec.namespace !== ns) continue;
      const o = i.get(ns, name);
      if (o) return o;
    }
    return undefined;
  }

  async start(onChange: (s: DiscoveredState, d?: DiscoveryDelta) => void): Promise<void> {
    this.onChange = onChange;
    const { server, context } = describeKubeConfig(this.opts.kubeConfig);
    log.info('starting Kubernetes discovery', { server, context, namespaces: this.watched ? [...this.watched] : 'all' });
    await Promise.all(this.all.map((i) => i.start()));
    const synced = Promise.all(this.all.map((i) => i.whenSynced()));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), this.opts.syncTimeoutMs ?? 60_000);
      timer.unref();
    });
    const r = await Promise.race([synced, timeout]);
    clearTimeout(timer);
    if (r === 'timeout') {
      const waiting = this.all
        .filter((i) => !i.health().synced)
        .map((i) => `${i.spec.resource}${i.spec.namespace ? ` in ${i.spec.namespace}` : ''}: ${i.health().lastError?.message ?? 'no answer yet'}`);
      log.warn('Kubernetes discovery has not synced; nothing is published until it has', { waiting });
      void synced.then(() => this.firstSync());
      return;
    }
    this.firstSync();
  }

  /** Every cache is complete: map every service once, then publish; from now on only dirty services. */
  private firstSync(): void {
    if (!this.onChange || this.publishing) return;
    for (const inf of this.services) for (const s of inf.list()) if (this.discovered(s.metadata?.namespace ?? '')) this.dirty.add(nsName(s));
    this.publishing = true;
    this.flush();
    log.info('Kubernetes discovery synced', this.status().counts);
  }

  async stop(): Promise<void> {
    clearTimeout(this.batchTimer);
    for (const i of this.all) i.stop();
    this.onChange = undefined;
  }

  current(): DiscoveredState {
    if (!this.publishing) return { services: [], workloads: [] };
    if (!this.cached) {
      const services: Service[] = [];
      const workloads: Workload[] = [];
      for (const o of this.outputs.values()) {
        if (o.service) services.push(o.service);
        workloads.push(...o.workloads.values());
      }
      this.cached = { services, workloads };
    }
    return this.cached;
  }

  // ---- events -> dirty services ----

  private mark(serviceKey: string): void {
    const ns = serviceKey.slice(0, serviceKey.indexOf('/'));
    if (!this.discovered(ns)) return;
    this.dirty.add(serviceKey);
    if (this.publishing && !this.batchTimer) {
      this.batchTimer = setTimeout(() => this.flush(), this.opts.batchMs ?? 2);
    }
  }

  private markAll(keys: Iterable<string> | undefined): void {
    if (keys) for (const k of keys) this.mark(k);
  }

  private onService(o: KubeService): void {
    this.mark(nsName(o));
  }

  private onSlice(type: string, o: KubeEndpointSlice): void {
    const k = nsName(o);
    const before = this.sliceService.get(k);
    const svc = o.metadata?.labels?.[SERVICE_NAME_LABEL];
    const after = type !== 'delete' && svc ? `${o.metadata?.namespace ?? ''}/${svc}` : undefined;
    if (before && before !== after) {
      const m = this.serviceSlices.get(before);
      m?.delete(k);
      if (m?.size === 0) this.serviceSlices.delete(before);
      this.sliceService.delete(k);
      this.mark(before);
    }
    if (after) {
      let m = this.serviceSlices.get(after);
      if (!m) this.serviceSlices.set(after, (m = new Map()));
      m.set(k, o);
      this.sliceService.set(k, after);
      this.mark(after);
    }
  }

  private onPod(o: KubePod): void {
    this.markAll(this.podDeps.get(nsName(o)));
  }

  private onNode(o: KubeNode): void {
    this.markAll(this.nodeDeps.get(o.metadata?.name ?? ''));
  }

  private onNamespace(o: KubeNamespace): void {
    const ns = o.metadata?.name ?? '';
    for (const inf of this.services) for (const s of inf.list(ns)) this.mark(nsName(s));
  }

  // ---- recompute ----

  private setDeps(index: Map<string, Set<string>>, serviceKey: string, before: string[], after: string[]): void {
    for (const d of before) {
      const s = index.get(d);
      s?.delete(serviceKey);
      if (s?.size === 0) index.delete(d);
    }
    for (const d of after) {
      let s = index.get(d);
      if (!s) index.set(d, (s = new Set()));
      s.add(serviceKey);
    }
  }

  /** Recomputes the dirty services from the caches and publishes what changed. */
  private flush(): void {
    this.batchTimer = undefined;
    if (!this.onChange || this.dirty.size === 0) return;
    const delta: DiscoveryDelta = { upserts: [], deletes: [] };
    const keys = [...this.dirty];
    this.dirty.clear();
    for (const sk of keys) {
      const [ns, name] = sk.split('/') as [string, string];
      const m = mapService(this.view, this.opts.cluster, ns, name);
      const prev = this.outputs.get(sk);
      const next: Output = { workloads: new Map(m.workloads.map((w) => [keyOf(refOf(w)), w])), pods: m.pods, nodes: m.nodes };
      if (m.service) next.service = m.service;
      this.setDeps(this.podDeps, sk, prev?.pods ?? [], m.pods);
      this.setDeps(this.nodeDeps, sk, prev?.nodes ?? [], m.nodes);
      this.problems.set(sk, m.problems);
      // Unchanged objects keep their identity (the agent skips them without comparing).
      if (prev?.service && m.service && JSON.stringify(prev.service) === JSON.stringify(m.service)) next.service = prev.service;
      else if (m.service) delta.upserts.push(m.service);
      else if (prev?.service) delta.deletes.push(keyOf(refOf(prev.service)));
      for (const [k, w] of next.workloads) {
        const old = prev?.workloads.get(k);
        if (old && JSON.stringify(old) === JSON.stringify(w)) next.workloads.set(k, old);
        else delta.upserts.push(w);
      }
      for (const k of prev?.workloads.keys() ?? []) if (!next.workloads.has(k)) delta.deletes.push(k);
      if (!next.service && next.workloads.size === 0 && next.pods.length === 0 && next.nodes.length === 0) this.outputs.delete(sk);
      else this.outputs.set(sk, next);
    }
    if (delta.upserts.length === 0 && delta.deletes.length === 0) return;
    this.cached = undefined;
    this.onChange(this.current(), delta);
  }

  // ---- health and status ----

  /** Logs what changed: losing or regaining the API server once, each distinct refusal once. */
  private healthChanged(): void {
    const s = this.connection();
    const state = s.connected ? (s.lastError ?? '') : 'unreachable';
    if (state === this.lastLoggedError) return;
    if (!s.connected) log.warn(`Kubernetes API server unreachable; serving the last state: ${s.lastError ?? ''}`, { since: s.since });
    else if (s.lastError) log.warn(`Kubernetes API: ${s.lastError}`);
    else if (this.lastLoggedError) log.info('Kubernetes API: every informer is healthy again');
    this.lastLoggedError = state;
  }

  private connection(): { connected: boolean; since?: string; lastError?: string; forbidden: KubernetesSourceStatus['forbidden'] } {
    const hs = this.all.map((i) => i.health());
    const failing = hs.filter((h) => h.lastError);
    const unreachable = failing.filter((h) => h.lastError!.code === 'unavailable');
    const forbidden = failing
      .filter((h) => h.lastError!.code === 'forbidden')
      .map((h) => ({ ...(h.lastError!.details as KubePermission), message: `missing permission: ${describePermission(h.lastError!.details as KubePermission)}` }));
    const out: ReturnType<KubernetesSource['connection']> = { connected: unreachable.length === 0, forbidden };
    const since = unreachable.map((h) => h.failingSince!).sort()[0];
    if (since) out.since = since;
    const last = (unreachable[0] ?? failing[0])?.lastError;
    if (last) out.lastError = last.message;
    return out;
  }

  private health(): InformerHealth[] {
    return this.all.map((i) => i.health());
  }

  status(): KubernetesSourceStatus {
    const { server, context } = describeKubeConfig(this.opts.kubeConfig);
    const c = this.connection();
    let services = 0;
    let exported = 0;
    let workloads = 0;
    for (const o of this.outputs.values()) {
      if (o.service) {
        services++;
        if (o.service.spec.exported) exported++;
      }
      workloads += o.workloads.size;
    }
    const regions = new Set<string>();
    const zones = new Set<string>();
    for (const n of this.nodes.list()) {
      const l = (n as KubeNode).metadata?.labels ?? {};
      if (l[REGION_LABEL]) regions.add(l[REGION_LABEL]);
      if (l[ZONE_LABEL]) zones.add(l[ZONE_LABEL]);
    }
    const s: KubernetesSourceStatus = {
      source: 'kubernetes',
      server,
      context,
      namespaces: this.watched ? [...this.watched] : 'all',
      synced: this.publishing,
      connected: c.connected,
      forbidden: c.forbidden,
      resources: this.health().map((h) => {
        const r: KubernetesSourceStatus['resources'][number] = { resource: h.resource, synced: h.synced, count: h.count };
        if (h.namespace) r.namespace = h.namespace;
        if (h.absent) r.absent = true;
        if (h.lastError) r.lastError = h.lastError.message;
        if (h.failingSince) r.failingSince = h.failingSince;
        return r;
      }),
      counts: { services, exported, workloads },
      topology: { regions: [...regions].sort(), zones: [...zones].sort() },
      problems: this.problems.status(),
    };
    if (c.since) s.since = c.since;
    if (c.lastError) s.lastError = c.lastError;
    return s;
  }
}
