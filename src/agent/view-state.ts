// What the agent knows: the hub's view (journaled on disk, so a restarted agent
// serves while the hub is away), this cluster's discovered objects, the
// topology (Clusters, Mesh) and the security settings derived from it, and the
// FederationIndex both feed.
//
// Invariants: every change is indexed as it arrives and marks exactly the global
// services it touches (the compiler re-translates only those); a topology change
// does not walk the view (Clusters and Mesh are kept apart and applied once per
// recompute, see flushTopology). This cluster's own objects are indexed from
// local discovery, never from the hub's copy. Policies have their own marked
// section at the end: the only place here that knows policy kinds.
import { clusterOf, keyOf, meshSettings, parseKey, refOf, theMesh, type ApiObject, type Cluster, type Mesh, type Service, type Workload } from '../api/index.js';
import type { DiscoveredState, DiscoveryDelta } from '../discovery/source.js';
import { FederationIndex } from '../federation/incremental.js';
import { globalKey } from '../federation/federate.js';
import { selectedNames, type PolicyObject } from '../policies/common.js';
import type { ViewUpdate } from './hub-connection.js';
import { ViewJournal } from './view-journal.js';
import { pluginOf, POLICY_KINDS, policySet } from '../registry.js';
import { serverPoliciesActive } from '../translate/xds/index.js';
import { type PolicySet } from '../policies/plugin.js';
import { type SecuritySettings } from '../api/index.js';

export type ViewSource = 'none' | 'disk' | 'hub';

export interface ViewStateHooks {
  /** AccessPolicies or the Mesh's access default changed: server listeners need re-evaluating. */
  accessChanged(): void;
  /** The Mesh's mTLS settings changed (every service was touched): server listeners too. */
  securityChanged(): void;
}

/** What changed in this cluster's local objects (already indexed). */
export interface LocalChanges {
  upserts: ApiObject[];
  deletes: string[];
}

export class ViewState {
  /** This cluster's discovered objects, by key. */
  private local = new Map<string, ApiObject>();
  /** The hub's view, by key. */
  private view = new Map<string, ApiObject>();
  /** The view's Clusters and Mesh (the topology), kept apart so a topology change does not walk the view. */
  private readonly clusters = new Map<string, Cluster>();
  private readonly meshes = new Map<string, Mesh>();
  private topologyDirty = true;
  private revision = 0;
  private source: ViewSource = 'none';
  /** A full view came and the changes made since it was built are still on their way. */
  private catchingUp = false;
  private journal: ViewJournal | undefined;
  readonly fed = new FederationIndex();
  /** mTLS settings from the Mesh; a change re-translates every service and server listener. */
  private securitySettings: SecuritySettings | undefined;
  private securityFingerprint = '';

  constructor(
    private readonly cluster: string,
    private readonly hooks: ViewStateHooks,
  ) {}

  /** Opens the on-disk journal and, if it holds a view, serves from it until the hub's arrives. */
  async open(dataDir: string): Promise<void> {
    const { journal, saved } = await ViewJournal.open(dataDir, this.cluster);
    this.journal = journal;
    if (saved.revision > 0) {
      this.view = saved.objects;
      this.revision = saved.revision;
      this.source = 'disk';
      for (const [k, o] of this.view) this.indexRemote(trimForView(o), k);
    }
  }

  async close(): Promise<void> {
    await this.journal?.close();
  }

  get viewRevision(): number {
    return this.revision;
  }

  get viewSource(): ViewSource {
    return this.source;
  }

  /** Whether there is a complete view to compile (one from disk or the hub, not in the middle of catching up). */
  get complete(): boolean {
    return this.source !== 'none' && !this.catchingUp;
  }

  get security(): SecuritySettings | undefined {
    return this.securitySettings;
  }

  localObjects(): ApiObject[] {
    return [...this.local.values()];
  }

  /** This cluster's Cluster object as the hub knows it. */
  clusterObject(): Cluster | undefined {
    return this.view.get(keyOf({ kind: 'Cluster', name: this.cluster })) as Cluster | undefined;
  }

  meshObject(): Mesh | undefined {
    return theMesh(this.meshes.values());
  }

  /** The local workload registered at address:port, if any. */
  localWorkloadAt(address: string, port: number): Workload | undefined {
    for (const o of this.local.values()) {
      if (o.kind !== 'Workload') continue;
      const w = o as Workload;
      if (w.spec.address === address && Object.values(w.spec.ports ?? {}).includes(port)) return w;
    }
    return undefined;
  }

  /** Local discovery's delta (what exactly changed): the cost follows the change. Undefined: nothing changed. */
  applyLocalDelta(delta: DiscoveryDelta): LocalChanges | undefined {
    const upserts: ApiObject[] = [];
    const deletes: string[] = [];
    for (const o of delta.upserts) {
      const k = keyOf(refOf(o));
      if (this.local.get(k) === o) continue;
      this.local.set(k, o);
      upserts.push(o);
    }
    for (const k of delta.deletes) if (this.local.delete(k)) deletes.push(k);
    return this.indexLocalChanges(upserts, deletes);
  }

  /**
   * Local discovery's whole state, diffed against what we had (objects a source
   * did not replace are skipped by identity); only the difference is indexed.
   */
  replaceLocal(state: DiscoveredState): LocalChanges | undefined {
    const upserts: ApiObject[] = [];
    const deletes: string[] = [];
    const next = new Map<string, ApiObject>();
    for (const o of [...state.services, ...state.workloads]) next.set(keyOf(refOf(o)), o);
    for (const [k, o] of next) {
      const prev = this.local.get(k);
      if (prev === o) continue;
      if (!prev || JSON.stringify(prev) !== JSON.stringify(o)) upserts.push(o);
    }
    for (const k of this.local.keys()) if (!next.has(k)) deletes.push(k);
    if (upserts.length === 0 && deletes.length === 0) return undefined;
    this.local = next;
    return this.indexLocalChanges(upserts, deletes);
  }

  private indexLocalChanges(upserts: ApiObject[], deletes: string[]): LocalChanges | undefined {
    if (upserts.length === 0 && deletes.length === 0) return undefined;
    for (const o of upserts) this.indexLocal(o);
    for (const k of deletes) this.unindex(parseKey(k));
    return { upserts, deletes };
  }

  /**
   * A view from the hub (full, or changes) is indexed and journaled. Returns
   * whether the view is complete; false while catching up: a full view may be
   * followed by the changes since it was built, and until they are in the copy
   * is partial (keep serving what we had and recompute once it is complete).
   */
  applyView(v: ViewUpdate): boolean {
    if (v.full) {
      this.view = new Map(v.upserts.map((o) => [keyOf(refOf(o)), trimForView(o)]));
      this.fed.clear();
      this.clearPolicies();
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
        if (this.removePolicy(ref.kind, k)) continue;
        if (ref.kind === 'Cluster' || ref.kind === 'Mesh') {
          if (ref.kind === 'Cluster') this.clusters.delete(k);
          else this.meshes.delete(k);
          this.topologyDirty = true;
        } else if (ref.cluster !== this.cluster) this.unindex(ref);
      }
      if (v.upserts.length > 0 || v.deletes.length > 0) {
        void this.journal?.append(
          v.revision,
          v.upserts.map((o) => [keyOf(refOf(o)), o]),
          v.deletes,
          () => this.view,
        );
      }
    }
    this.revision = v.revision;
    if (v.full) this.catchingUp = !v.caughtUp;
    else if (v.caughtUp) this.catchingUp = false;
    if (this.catchingUp) return false;
    this.source = 'hub';
    return true;
  }

  /** Applies a topology change (Clusters, Mesh) to the index and the security settings, once per recompute. */
  flushTopology(): void {
    if (!this.topologyDirty) return;
    this.topologyDirty = false;
    this.fed.setClusters([...this.clusters.values()], theMesh(this.meshes.values()), this.cluster);
    this.refreshSecurity();
    this.refreshAccessDefault();
  }

  /** Security settings from the Mesh; when they change every service and server listener is re-translated. */
  private refreshSecurity(): void {
    const m = meshSettings(this.meshObject());
    const next: SecuritySettings = { trustDomain: m.trustDomain, mode: m.mtlsMode, serviceModes: m.serviceModes };
    const fp = JSON.stringify([next.trustDomain, next.mode, [...next.serviceModes].sort()]);
    if (fp === this.securityFingerprint) return;
    this.securityFingerprint = fp;
    this.securitySettings = next;
    this.fed.touchAll();
    this.hooks.securityChanged();
  }

  /** Feeds an object of the hub's view into the index; this cluster's own objects come from local discovery. */
  private indexRemote(o: ApiObject, key?: string): void {
    if (this.indexPolicy(o)) return;
    if (o.kind === 'Cluster' || o.kind === 'Mesh') {
      if (o.kind === 'Cluster') this.clusters.set(keyOf(refOf(o)), o as Cluster);
      else this.meshes.set(keyOf(refOf(o)), o as Mesh);
      this.topologyDirty = true;
      return;
    }
    if (clusterOf(o) === this.cluster) {
      // The hub's copy of a local Service carries the age the hub gave it: use it
      // for the oldest-export rule so every agent sees the same ages.
      const mine = this.local.get(keyOf(refOf(o)));
      if (mine && o.kind === 'Service') this.fed.upsertService(withSince(mine as Service, o.metadata.creationTimestamp));
      return;
    }
    if (o.kind === 'Service') this.fed.upsertService(o as Service);
    else if (o.kind === 'Workload') this.fed.upsertWorkload(o as Workload, key);
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

  // ---------------------------------------------------------------------------
  // Policies: every policy object of the view (the kinds of src/registry.ts),
  // by key; the set is rebuilt when one changes. What a change touches comes
  // from its plugin (enforcedBy), not from the kind's name.
  // ---------------------------------------------------------------------------

  private readonly policies = new Map<string, PolicyObject>();
  private policyCache: PolicySet | undefined;
  private accessDefaultAction: 'ALLOW' | 'DENY' = 'ALLOW';

  /** The policies of the view, oldest first (what translation resolves per service). */
  policySet(): PolicySet {
    return (this.policyCache ??= policySet(this.policies.values()));
  }

  /** The Mesh's access default (as of the last topology flush). */
  get accessDefault(): 'ALLOW' | 'DENY' {
    return this.accessDefaultAction;
  }

  /** Whether any server-side policy (an AccessPolicy, a deny-all default) can put filters on server listeners. */
  accessActive(): boolean {
    return serverPoliciesActive(this.policySet(), { accessDefault: this.accessDefaultAction });
  }

  /** Indexes a policy object of the view; false for other kinds. */
  private indexPolicy(o: ApiObject): boolean {
    if (!POLICY_KINDS.has(o.kind)) return false;
    this.setPolicy(keyOf(refOf(o)), o as unknown as PolicyObject);
    return true;
  }

  /** A deleted view object, if it is a policy; false for other kinds. */
  private removePolicy(kind: string, key: string): boolean {
    if (!POLICY_KINDS.has(kind)) return false;
    this.setPolicy(key, undefined);
    return true;
  }

  private clearPolicies(): void {
    this.policies.clear();
    this.policyCache = undefined;
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
      this.hooks.accessChanged();
      return;
    }
    for (const p of [prev, next]) {
      if (!p?.metadata.namespace) continue;
      const names = selectedNames(p);
      if (names) for (const n of names) this.fed.touch(globalKey(p.metadata.namespace, n));
      else this.fed.touchNamespace(p.metadata.namespace);
    }
  }

  private refreshAccessDefault(): void {
    const accessDefault = meshSettings(this.meshObject()).accessDefault;
    if (accessDefault === this.accessDefaultAction) return;
    this.accessDefaultAction = accessDefault;
    this.hooks.accessChanged();
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
