// The federated view (and the policy statuses derived from it) as the API
// reads it, computed once per store revision and reused until the store
// changes. Level-triggered: what is cached is derived from the store's state
// and keyed by the revision it was read at; every read compares that with the
// store's current revision, so an answer after a write is never stale (a commit
// bumps the revision before it resolves). A commit landing between the reads
// behind one computation leaves it mixed, as a direct read would be; it is kept
// under the revision read first, which the store has already left (revisions
// only grow), so no later read is answered from it. Answers share the cached
// objects: callers only serialize or read them, never modify them.
import { theMesh, type ApiObject, type Cluster, type Mesh, type Service, type Workload } from '../api/index.js';
import { federate } from '../federation/federate.js';
import type { FederatedView } from '../federation/types.js';
import { policyStatuses } from '../policies/resolve.js';
import type { Store } from '../store/store.js';
import { POLICY_KINDS, policySet } from '../registry.js';

/** Policy status by `${kind} ${namespace}/${name}`. */
export type PolicyStatuses = ReturnType<typeof policyStatuses>;

interface Derived {
  /** The store revision when the reads behind this began. */
  revision: number;
  view: FederatedView;
  mesh: Mesh | undefined;
  /** Computed on first use: a globalservices read does not pay for it. */
  statuses?: Promise<PolicyStatuses>;
}

export class FederatedViewCache {
  private cached: Promise<Derived> | undefined;
  private cachedRevision = -1;

  constructor(private readonly store: Store) {}

  /** The federated view at the store's current revision. */
  async view(): Promise<FederatedView> {
    return (await this.derived()).view;
  }

  /** The federated view and the Mesh it was computed with, at the store's current revision. */
  async viewAndMesh(): Promise<{ view: FederatedView; mesh: Mesh | undefined }> {
    const d = await this.derived();
    return { view: d.view, mesh: d.mesh };
  }

  /** The status of every policy at the store's current revision. */
  async policyStatuses(): Promise<PolicyStatuses> {
    const d = await this.derived();
    d.statuses ??= this.computeStatuses(d);
    return d.statuses;
  }

  private derived(): Promise<Derived> {
    const revision = this.store.revision();
    if (this.cached && this.cachedRevision === revision) return this.cached;
    const derived = this.compute(revision);
    this.cached = derived;
    this.cachedRevision = revision;
    // A failed computation is not kept: the next read tries again.
    derived.catch(() => this.forget(derived));
    return derived;
  }

  private forget(derived: Promise<Derived>): void {
    if (this.cached === derived) {
      this.cached = undefined;
      this.cachedRevision = -1;
    }
  }

  private async compute(revision: number): Promise<Derived> {
    const mesh = theMesh(await this.store.list({ kind: 'Mesh' })) as Mesh | undefined;
    const view = federate({
      clusters: (await this.store.list({ kind: 'Cluster' })) as Cluster[],
      mesh,
      services: (await this.store.list({ kind: 'Service' })) as Service[],
      workloads: (await this.store.list({ kind: 'Workload' })) as Workload[],
    });
    return { revision, view, mesh };
  }

  private async computeStatuses(d: Derived): Promise<PolicyStatuses> {
    const all: ApiObject[] = [];
    for (const k of POLICY_KINDS) all.push(...(await this.store.list({ kind: k })));
    return policyStatuses(d.view, policySet(all), d.mesh);
  }
}
