// The compiler: turns the global services the view state marked as touched
// into xDS resources and hands the xDS server exactly the ones that changed.
//
// Invariants: a recompute re-federates (FederationIndex.flush) and re-translates
// only the touched services, so the cost of a change follows what it affects,
// not the fleet's size. Work is done in slices of at most SLICE_MS so a full
// view of a large fleet does not freeze the agent. A service's resources always
// go to the xDS server together. The server becomes ready (answers proxies) only
// once the queue is empty: nothing before the state is complete. Knows nothing
// of policies beyond passing the view's PolicySet to translation.
import type { GlobalService } from '../federation/types.js';
import { translateService } from '../translate/xds/index.js';
import type { AdsServer } from '../xds/ads-server.js';
import { logger } from '../util/log.js';
import { type XdsResource, RESOURCE_TYPES } from '../xdsapi/index.js';
import type { ViewState } from './view-state.js';

const log = logger('agent');
/** Longest stretch of translation work per event-loop turn (ms). */
const SLICE_MS = 50;

export interface ResourceCounts {
  listeners: number;
  routes: number;
  clusters: number;
  endpoints: number;
}

export interface RecomputeStats {
  count: number;
  lastServices: number;
  lastMs: number;
}

const TYPE_KEYS: Record<string, keyof ResourceCounts> = {
  'type.googleapis.com/envoy.config.listener.v3.Listener': 'listeners',
  'type.googleapis.com/envoy.config.route.v3.RouteConfiguration': 'routes',
  'type.googleapis.com/envoy.config.cluster.v3.Cluster': 'clusters',
  'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment': 'endpoints',
};

export interface CompilerHooks {
  /** Services were re-translated in this slice. */
  translated(): void;
  /** The queue is empty: everything touched so far is in the xDS server. */
  settled(): void;
}

export class Compiler {
  /** global service key -> the resources it produced: type (index in RESOURCE_TYPES) and name of each */
  private readonly produced = new Map<string, { types: Uint8Array; names: string[] }>();
  /** Global services federated but not translated yet (undefined: removed), in order; worked off in slices. */
  private readonly work = new Map<string, GlobalService | undefined>();
  private workScheduled = false;
  private recomputeScheduled = false;
  private readonly counts: ResourceCounts = { listeners: 0, routes: 0, clusters: 0, endpoints: 0 };
  private stats: RecomputeStats = { count: 0, lastServices: 0, lastMs: 0 };
  private isReady = false;
  private reason = 'waiting for the first view from the hub';

  constructor(
    private readonly cluster: string,
    private readonly state: ViewState,
    private readonly ads: AdsServer,
    private readonly hooks: CompilerHooks,
  ) {}

  get ready(): boolean {
    return this.isReady;
  }

  /** Why the xDS server does not answer yet (meaningful while not ready). */
  get notReadyReason(): string {
    return this.reason;
  }

  set notReadyReason(reason: string) {
    this.reason = reason;
  }

  get resourceCounts(): ResourceCounts {
    return this.counts;
  }

  get recomputeStats(): RecomputeStats {
    return this.stats;
  }

  /** Recomputes once everything that arrives in this turn of the event loop is in. */
  schedule(): void {
    if (this.recomputeScheduled) return;
    this.recomputeScheduled = true;
    setImmediate(() => {
      this.recomputeScheduled = false;
      this.recompute();
    });
  }

  /** Re-federates and re-translates the touched services; hands the xDS server only what changed. */
  recompute(): void {
    if (!this.state.complete) return;
    if (!this.state.clusterObject()) {
      this.reason = `the hub's view has no Cluster "${this.cluster}"`;
      return;
    }
    this.state.flushTopology();
    const changes = this.state.fed.flush();
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
   * keepalive, proxies' ACKs) need answers meanwhile.
   */
  private translateSome(): void {
    if (this.work.size === 0) return this.afterTranslate(0, 0);
    const t0 = performance.now();
    const me = this.state.clusterObject()!;
    const security = this.state.security;
    const ctx = { cluster: this.cluster, locality: { region: me.spec.region, zones: me.spec.zones }, policies: this.state.policySet(), ...(security ? { security } : {}) };
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
            this.counts[TYPE_KEYS[typeUrl]!]--;
          }
        }
      }
      for (const r of next) if (!before.has(`${r.typeUrl}\u0000${r.name}`)) this.counts[TYPE_KEYS[r.typeUrl]!]++;
      for (const r of next) upserts.push(r);
      if (next.length > 0) {
        this.produced.set(gk, { types: Uint8Array.from(next, (r) => RESOURCE_TYPES.indexOf(r.typeUrl as (typeof RESOURCE_TYPES)[number])), names: next.map((r) => r.name) });
      } else this.produced.delete(gk);
      if (performance.now() - t0 > SLICE_MS) break;
    }
    if (upserts.length > 0 || removals.length > 0) this.ads.applyChanges({ upserts, removals });
    if (done > 0) this.hooks.translated();
    this.afterTranslate(done, performance.now() - t0);
  }

  private afterTranslate(services: number, ms: number): void {
    if (services > 0) this.stats = { count: this.stats.count + 1, lastServices: services, lastMs: Math.round(ms * 100) / 100 };
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
    this.hooks.settled();
    if (!this.isReady) {
      this.ads.markReady();
      this.isReady = true;
      log.info('xDS snapshot complete: serving', { ...this.counts, view: this.state.viewSource });
    }
  }
}
