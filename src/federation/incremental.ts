// The agent's incremental federation. It indexes the discovered objects of every
// cluster and recomputes only the global services a change touched, with the very
// function the whole-view federate() uses — so cost follows the change, not the
// fleet, and the result is always what federate() would say for the same state.
import { keyOf, refOf, type Cluster, type Mesh, type ObjectRef, type Service, type Workload } from '../api/index.js';
import { byNamespaceName, federateService, globalKey, memberClusters, partKey } from './federate.js';
import type { ClusterTopology, FederatedView, GlobalService } from './types.js';

export interface FederationChanges {
  /** Global services recomputed (new or changed), keyed namespace/name. */
  changed: Map<string, GlobalService>;
  /** Global services that no longer exist. */
  removed: Set<string>;
}

/** One cluster's workloads of one service. */
interface Part {
  key: string;
  /** The global service (namespace/name) it belongs to. */
  gk: string;
  list: Map<string, Workload>;
}

export class FederationIndex {
  private clusters: ClusterTopology[] = [];
  private topo = new Map<string, ClusterTopology>();
  private topoFingerprint = '';
  /** namespace/name -> cluster -> Service */
  private services = new Map<string, Map<string, Service>>();
  /** cluster/namespace/service -> its workloads */
  private workloads = new Map<string, Part>();
  /** workload key -> the part it is filed under (a workload may move to another service) */
  private workloadPart = new Map<string, Part>();
  private result = new Map<string, GlobalService>();
  /** Global services with conflicts (a subset of result), for status without walking every service. */
  private conflicted = new Map<string, GlobalService>();
  private dirty = new Set<string>();

  /**
   * Sets the member clusters. A topology change touches every service; a
   * liveness change only the services with a part in that cluster; a
   * status-only change none. `self`: the agent's own cluster (always Live).
   */
  setClusters(clusters: Cluster[], mesh?: Mesh, self?: string): void {
    const members = memberClusters(clusters, mesh, self);
    const fingerprint = JSON.stringify(members.map((c) => ({ ...c, liveness: undefined })));
    const livenessChanged = new Set<string>();
    for (const c of members) if (JSON.stringify(c.liveness) !== JSON.stringify(this.topo.get(c.name)?.liveness)) livenessChanged.add(c.name);
    if (fingerprint === this.topoFingerprint && livenessChanged.size === 0) return;
    const topologyChanged = fingerprint !== this.topoFingerprint;
    this.topoFingerprint = fingerprint;
    this.clusters = members;
    this.topo = new Map(members.map((c) => [c.name, c]));
    if (topologyChanged) {
      for (const k of this.services.keys()) this.dirty.add(k);
      for (const k of this.result.keys()) this.dirty.add(k);
      return;
    }
    for (const [k, byCluster] of this.services) {
      for (const c of livenessChanged) {
        if (byCluster.has(c)) {
          this.dirty.add(k);
          break;
        }
      }
    }
  }

  upsertService(s: Service): void {
    if (!s.metadata.namespace) return;
    const gk = globalKey(s.metadata.namespace, s.metadata.name);
    let byCluster = this.services.get(gk);
    if (!byCluster) this.services.set(gk, (byCluster = new Map()));
    byCluster.set(s.spec.cluster, s);
    this.dirty.add(gk);
  }

  removeService(ref: ObjectRef): void {
    if (!ref.namespace || !ref.cluster) return;
    const gk = globalKey(ref.namespace, ref.name);
    const byCluster = this.services.get(gk);
    if (!byCluster?.delete(ref.cluster)) return;
    if (byCluster.size === 0) this.services.delete(gk);
    this.dirty.add(gk);
  }

  /** `key`: the workload's keyOf, when the caller has it (shared instead of built again). */
  upsertWorkload(w: Workload, key?: string): void {
    if (!w.metadata.namespace) return;
    const wk = key ?? keyOf(refOf(w));
    this.detachWorkload(wk);
    const pk = partKey(w.spec.cluster, w.metadata.namespace, w.spec.service);
    let part = this.workloads.get(pk);
    if (!part) this.workloads.set(pk, (part = { key: pk, gk: globalKey(w.metadata.namespace, w.spec.service), list: new Map() }));
    part.list.set(wk, w);
    this.workloadPart.set(wk, part);
    this.dirty.add(part.gk);
  }

  removeWorkload(ref: ObjectRef): void {
    this.detachWorkload(keyOf(ref));
  }

  private detachWorkload(wk: string): void {
    const part = this.workloadPart.get(wk);
    if (part === undefined) return;
    this.workloadPart.delete(wk);
    part.list.delete(wk);
    if (part.list.size === 0 && this.workloads.get(part.key) === part) this.workloads.delete(part.key);
    this.dirty.add(part.gk);
  }

  /** Marks one global service (namespace/name) for recompute, e.g. because a policy selecting it changed. */
  touch(gk: string): void {
    this.dirty.add(gk);
  }

  /** Marks every known global service of a namespace (a policy that selects by labels or cluster). */
  touchNamespace(namespace: string): void {
    const prefix = `${namespace}/`;
    for (const k of this.services.keys()) if (k.startsWith(prefix)) this.dirty.add(k);
    for (const k of this.result.keys()) if (k.startsWith(prefix)) this.dirty.add(k);
  }

  /** Marks every global service (a mesh-wide setting such as the mTLS mode changed). */
  touchAll(): void {
    for (const k of this.services.keys()) this.dirty.add(k);
    for (const k of this.result.keys()) this.dirty.add(k);
  }

  /** Removes everything (before a full resync); the next flush reports what disappeared. */
  clear(): void {
    for (const k of this.result.keys()) this.dirty.add(k);
    this.services.clear();
    this.workloads.clear();
    this.workloadPart.clear();
  }

  /** Recomputes the touched global services. */
  flush(): FederationChanges {
    const changed = new Map<string, GlobalService>();
    const removed = new Set<string>();
    for (const gk of this.dirty) {
      const defs = this.services.get(gk);
      const [namespace, name] = gk.split('/') as [string, string];
      const g = defs ? federateService(namespace, name, defs.values(), (cluster) => this.workloads.get(partKey(cluster, namespace, name))?.list.values() ?? [], this.topo) : undefined;
      if (g) {
        this.result.set(gk, g);
        changed.set(gk, g);
        if (g.conflicts.length > 0) this.conflicted.set(gk, g);
        else this.conflicted.delete(gk);
      } else if (this.result.delete(gk)) {
        this.conflicted.delete(gk);
        removed.add(gk);
      }
    }
    this.dirty.clear();
    return { changed, removed };
  }

  get pending(): number {
    return this.dirty.size;
  }

  /** Global services in the current result. */
  get size(): number {
    return this.result.size;
  }

  /** Every conflict message of the current result (services in namespace/name order). */
  conflicts(): string[] {
    return [...this.conflicted.values()].sort(byNamespaceName).flatMap((g) => g.conflicts.map((c) => c.message));
  }

  /** The whole current view, sorted (O(services): for API reads, not for the change path). */
  view(): FederatedView {
    return { clusters: this.clusters, services: [...this.result.values()].sort(byNamespaceName) };
  }

  get(namespace: string, name: string): GlobalService | undefined {
    return this.result.get(globalKey(namespace, name));
  }
}
