// The hub's Kubernetes source of policy objects (--kubernetes-policies): GitOps
// (Argo CD, Flux) writes TrafficPolicies, FailoverPolicies, AccessPolicies and
// the Mesh as custom resources (meshfed crds) into the hub's own cluster, and
// the hub takes them from there.
// One @kubernetes/client-node informer (list + watch) per kind of CRD_KINDS.
// Reconcile is level-triggered and serialized: desired = the informers'
// caches; the hub store's objects marked `meshfed.io/source: kubernetes` are
// created, updated and deleted to match, through the API's write path
// (applyObjects/deleteObjects: validated, persisted) and audited as
// `system:kubernetes`. Each custom resource gets its status written back
// through the /status subresource (a JSON merge patch): condition Accepted
// (True; or False with reason Invalid and the fields named, or Conflict when
// the API owns an object of that name) and, once accepted, the policy's status
// as the hub API computes it; rewritten whenever it changes (any store change
// may change it: a conflict, a service appearing).
// Invariants: a kind is reconciled only after its informer has listed once in
// this process, and a failed list or watch leaves the cache (and so the hub's
// objects) as they were: an API server that goes away deletes nothing, and
// status() says since when it is gone. An invalid custom resource changes
// nothing at the hub (an earlier valid version stays). Nothing from Kubernetes
// is trusted: every object passes the same validation as an API write.
import type { KubeConfig, KubernetesObject, ListWatch } from '@kubernetes/client-node';
import { describeRef, keyOf, refOf, type ApiObject, type KindDef } from '../api/index.js';
import type { AuditSink } from '../auth/types.js';
import { auditRecordOf } from '../audit/record.js';
import type { Store } from '../store/store.js';
import { errorMessage } from '../util/errors.js';
import { logger } from '../util/log.js';
import { CRD_KINDS } from '../registry.js';
import { FederatedViewCache } from './federated-view.js';
import { applyObjects, deleteObjects, KUBERNETES_SOURCE, SOURCE_ANNOTATION } from './objects.js';
import { withStatus } from './api-status.js';
import { crToObject, statusPatch, type Outcome } from './kubernetes-status.js';

const log = logger('hub.kubernetes');

/** The audit identity of writes this source makes. */
export const KUBERNETES_PRINCIPAL = 'system:kubernetes';
const GROUP = 'meshfed.io';
const VERSION = 'v1alpha1';
/** Retry after a failed list or watch: doubling from 1 s up to 30 s. */
const RETRY_MS = { first: 1000, max: 30_000 };
/** Coalescing window for reconciles after a custom resource changed (kubectl apply comes in bursts). */
const RECONCILE_DEBOUNCE_MS = 50;
/**
 * After a store change (statuses only may follow): longer, since agents' reports change the store often and each
 * status computation builds the federated view of the revision.
 */
const STATUS_DEBOUNCE_MS = 1000;

export interface KubernetesPoliciesOptions {
  /** A kubeconfig file; default: KubeConfig.loadFromDefault() (KUBECONFIG, ~/.kube/config, in-cluster). */
  kubeconfig?: string;
  /** A context of the kubeconfig; default its current context. */
  context?: string;
}

export interface KubernetesPoliciesStatus {
  server: string;
  /** Every kind listed and watching. */
  connected: boolean;
  /** Since when the source is in its current state (connected, or not). */
  since: string;
  /** Per kind: listed once (reconciled), the last error and since when. */
  kinds: { kind: string; synced: boolean; objects: number; error?: string; errorSince?: string }[];
  /** Custom resources refused (invalid or in conflict) at the last reconcile. */
  refused: { object: string; reason: string; message: string }[];
  lastReconcile?: string;
}

interface KindWatch {
  def: KindDef;
  /** A fresh informer per (re)start: every start lists, so "synced" means a whole list was taken. */
  informer: ListWatch<KubernetesObject>;
  make(): ListWatch<KubernetesObject>;
  synced: boolean;
  error?: string;
  errorSince?: string;
  retryMs: number;
  timer?: NodeJS.Timeout;
}

export class KubernetesPolicySource {
  private readonly watches: KindWatch[] = [];
  private readonly views: FederatedViewCache;
  private stopped = false;
  private running: Promise<void> | undefined;
  private again = false;
  private timer: NodeJS.Timeout | undefined;
  private timerDue = 0;
  private stopStoreWatch: (() => void) | undefined;
  private since = new Date().toISOString();
  private wasConnected = false;
  private refused: KubernetesPoliciesStatus['refused'] = [];
  private lastReconcile: string | undefined;

  private constructor(
    private readonly store: Store,
    private readonly audit: AuditSink,
    private readonly kc: KubeConfig,
    private readonly patchStatus: (def: KindDef, cr: KubernetesObject, body: object) => Promise<void>,
  ) {
    this.views = new FederatedViewCache(store);
  }

  /** Starts an informer per kind; returns at once (a cluster that is not reachable yet is retried, status() says so). */
  static async start(store: Store, audit: AuditSink, opts: KubernetesPoliciesOptions): Promise<KubernetesPolicySource> {
    // Loaded only when the hub reads from Kubernetes: the client is large.
    const k8s = await import('@kubernetes/client-node');
    const { loadKubeConfig } = await import('../kube/config.js');
    const kc = loadKubeConfig({ ...(opts.kubeconfig ? { kubeconfig: opts.kubeconfig } : {}), ...(opts.context ? { context: opts.context } : {}) });
    const api = kc.makeApiClient(k8s.CustomObjectsApi);
    const patchOptions = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);
    const source = new KubernetesPolicySource(store, audit, kc, async (def, cr, body) => {
      const common = { group: GROUP, version: VERSION, plural: def.plural, name: cr.metadata!.name!, body, fieldManager: 'meshfed-hub' };
      if (def.namespaced) await api.patchNamespacedCustomObjectStatus({ ...common, namespace: cr.metadata!.namespace! }, patchOptions);
      else await api.patchClusterCustomObjectStatus(common, patchOptions);
    });
    for (const def of CRD_KINDS) {
      const make = (): ListWatch<KubernetesObject> => {
        const list = async () => {
          const r = (await api.listClusterCustomObject({ group: GROUP, version: VERSION, plural: def.plural })) as { items: KubernetesObject[]; metadata?: { resourceVersion?: string } };
          // Marked after the informer took the list (it does right after this resolves): reconciles are scheduled, not run here.
          setImmediate(() => w.informer === informer && source.listed(w));
          return r;
        };
        const informer = k8s.makeInformer(kc, `/apis/${GROUP}/${VERSION}/${def.plural}`, list) as ListWatch<KubernetesObject>;
        for (const ev of ['add', 'update', 'delete'] as const) informer.on(ev, () => w.informer === informer && source.schedule());
        informer.on('error', (err: unknown) => w.informer === informer && source.failed(w, err));
        return informer;
      };
      const w: KindWatch = { def, informer: undefined as unknown as ListWatch<KubernetesObject>, make, synced: false, retryMs: RETRY_MS.first };
      w.informer = make();
      source.watches.push(w);
    }
    // Status follows the hub's state: a store change (a conflict, a service reported) may change it.
    source.stopStoreWatch = store.watch(store.revision(), () => source.schedule(STATUS_DEBOUNCE_MS));
    for (const w of source.watches) source.startInformer(w);
    log.info('reading policies from Kubernetes', { server: kc.getCurrentCluster()?.server, kinds: CRD_KINDS.map((k) => k.plural) });
    return source;
  }

  status(): KubernetesPoliciesStatus {
    return {
      server: this.kc.getCurrentCluster()?.server ?? '',
      connected: this.connected(),
      since: this.since,
      kinds: this.watches.map((w) => ({
        kind: w.def.kind,
        synced: w.synced,
        objects: w.informer.list().length,
        ...(w.error ? { error: w.error, errorSince: w.errorSince! } : {}),
      })),
      refused: this.refused,
      ...(this.lastReconcile ? { lastReconcile: this.lastReconcile } : {}),
    };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.stopStoreWatch?.();
    for (const w of this.watches) {
      clearTimeout(w.timer);
      await w.informer.stop().catch(() => undefined);
    }
    await this.running?.catch(() => undefined);
  }

  private connected(): boolean {
    return this.watches.every((w) => w.synced && !w.error);
  }

  private noteConnection(): void {
    const now = this.connected();
    if (now !== this.wasConnected) {
      this.wasConnected = now;
      this.since = new Date().toISOString();
    }
  }

  private startInformer(w: KindWatch): void {
    if (this.stopped) return;
    const informer = w.informer;
    informer.start().catch((err: unknown) => w.informer === informer && this.failed(w, err));
  }

  private listed(w: KindWatch): void {
    w.synced = true;
    if (w.error) log.info('Kubernetes source back', { kind: w.def.kind, downSince: w.errorSince });
    delete w.error;
    delete w.errorSince;
    w.retryMs = RETRY_MS.first;
    this.noteConnection();
    this.schedule();
  }

  /**
   * A failed list or watch: the hub's objects of the kind stay as they were (the kind is not reconciled until a
   * new informer has listed it whole); retried with backoff.
   */
  private failed(w: KindWatch, err: unknown): void {
    if (this.stopped) return;
    const old = w.informer;
    void old.stop().catch(() => undefined);
    w.informer = w.make();
    w.synced = false;
    const message = describeKubeError(err, w.def);
    if (!w.error) {
      w.errorSince = new Date().toISOString();
      log.warn('Kubernetes source failed; the hub keeps its objects', { kind: w.def.kind, error: message });
    }
    w.error = message;
    this.noteConnection();
    clearTimeout(w.timer);
    w.timer = setTimeout(() => this.startInformer(w), w.retryMs);
    w.timer.unref();
    w.retryMs = Math.min(w.retryMs * 2, RETRY_MS.max);
  }

  /** Coalesces triggers into one reconcile; a trigger during a reconcile runs another after it. */
  private schedule(delayMs = RECONCILE_DEBOUNCE_MS): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    // A pending reconcile due sooner serves this trigger too; one due later is brought forward.
    if (this.timer && this.timerDue <= Date.now() + delayMs) return;
    clearTimeout(this.timer);
    this.timerDue = Date.now() + delayMs;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.running = this.reconcile()
        .catch((err: unknown) => log.error('reconcile failed', { error: errorMessage(err) }))
        .finally(() => {
          this.running = undefined;
          if (this.again) {
            this.again = false;
            this.schedule();
          }
        });
    }, RECONCILE_DEBOUNCE_MS);
  }

  private async reconcile(): Promise<void> {
    const refused: KubernetesPoliciesStatus['refused'] = [];
    const outcomes: { w: KindWatch; cr: KubernetesObject; outcome: Outcome }[] = [];
    for (const w of this.watches) {
      if (!w.synced) continue;
      const desired = new Map<string, ApiObject>();
      for (const cr of w.informer.list()) {
        const r = crToObject(cr, w.def);
        if (!r.ok) {
          outcomes.push({ w, cr, outcome: { accepted: false, reason: 'Invalid', message: r.message } });
          refused.push({ object: `${w.def.kind} ${crName(cr)}`, reason: 'Invalid', message: r.message });
          continue;
        }
        const existing = await this.store.get(refOf(r.object));
        if (existing && existing.metadata.annotations?.[SOURCE_ANNOTATION] !== KUBERNETES_SOURCE) {
          const message = `${describeRef(refOf(r.object))} exists at the hub, written through its API: delete it there (meshfed delete) for the hub to take this one`;
          outcomes.push({ w, cr, outcome: { accepted: false, reason: 'Conflict', message } });
          refused.push({ object: `${w.def.kind} ${crName(cr)}`, reason: 'Conflict', message });
          continue;
        }
        desired.set(keyOf(refOf(r.object)), r.object);
        outcomes.push({ w, cr, outcome: { accepted: true, object: r.object } });
      }
      await this.converge(w.def, desired, new Set(outcomes.filter((o) => o.w === w && !o.outcome.accepted).map((o) => crKey(w.def, o.cr))));
    }
    this.refused = refused;
    this.lastReconcile = new Date().toISOString();
    await this.writeStatuses(outcomes);
  }

  /** The hub's Kubernetes-sourced objects of one kind made equal to `desired`; `keep`: keys of invalid CRs (an earlier version stays). */
  private async converge(def: KindDef, desired: Map<string, ApiObject>, keep: Set<string>): Promise<void> {
    const current = (await this.store.list({ kind: def.kind })).filter((o) => o.metadata.annotations?.[SOURCE_ANNOTATION] === KUBERNETES_SOURCE);
    const puts: ApiObject[] = [];
    for (const o of desired.values()) {
      const prev = current.find((c) => keyOf(refOf(c)) === keyOf(refOf(o)));
      if (!prev || !sameContent(prev, o)) puts.push(o);
    }
    const deletes = current.filter((c) => !desired.has(keyOf(refOf(c))) && !keep.has(keyOf(refOf(c))));
    for (const o of puts) {
      const before = current.find((c) => keyOf(refOf(c)) === keyOf(refOf(o)));
      await this.audited(before ? 'update' : 'create', o, before, () => applyObjects(this.store, [o], { source: KUBERNETES_SOURCE }));
    }
    for (const o of deletes) await this.audited('delete', o, o, () => deleteObjects(this.store, [refOf(o)], { source: KUBERNETES_SOURCE }));
    if (puts.length || deletes.length) log.info('reconciled from Kubernetes', { kind: def.kind, applied: puts.map((o) => describeRef(refOf(o))), deleted: deletes.map((o) => describeRef(refOf(o))) });
  }

  /** One write, audited as the API audits (allowed with the revision, or failed with the reason). */
  private async audited(verb: 'create' | 'update' | 'delete', o: ApiObject, before: ApiObject | undefined, write: () => Promise<unknown>): Promise<void> {
    const perm = { verb, kind: o.kind, name: o.metadata.name, ...(o.metadata.namespace ? { namespace: o.metadata.namespace } : {}) };
    const url = `/apis/${GROUP}/${VERSION}/${o.metadata.namespace ? `namespaces/${o.metadata.namespace}/` : ''}${findPlural(o.kind)}/${o.metadata.name}`;
    const record = async (outcome: 'allowed' | 'failed', reason?: string) => {
      const r = auditRecordOf({
        from: this.kc.getCurrentCluster()?.server ?? 'kubernetes',
        method: 'RECONCILE',
        url,
        permission: perm,
        outcome,
        ...(reason !== undefined ? { reason } : { revision: this.store.revision() }),
        ...(before ? { before } : {}),
        ...(verb !== 'delete' ? { after: o } : {}),
      });
      r.who = KUBERNETES_PRINCIPAL;
      await this.audit.record(r);
    };
    try {
      await write();
    } catch (err) {
      await record('failed', errorMessage(err));
      log.warn('a write from Kubernetes failed', { object: describeRef(refOf(o)), error: errorMessage(err) });
      return;
    }
    await record('allowed');
  }

  /** Status of every CR through /status: written when it differs from what the CR shows (level-triggered). */
  private async writeStatuses(outcomes: { w: KindWatch; cr: KubernetesObject; outcome: Outcome }[]): Promise<void> {
    for (const { w, cr, outcome } of outcomes) {
      if (this.stopped) return;
      let computed: Record<string, unknown> | undefined;
      if (outcome.accepted) {
        const stored = await this.store.get(refOf(outcome.object));
        const [withSt] = stored ? await withStatus(this.store, this.views, w.def.kind, [stored]) : [];
        computed = (withSt?.status as Record<string, unknown> | undefined) ?? {};
      }
      const patch = statusPatch(cr, outcome, computed);
      if (!patch) continue;
      try {
        await this.patchStatus(w.def, cr, patch);
      } catch (err) {
        // Not fatal: the next reconcile (any change, or the retry of a failed informer) writes it again.
        log.warn('status write-back failed', { object: `${w.def.kind} ${crName(cr)}`, error: describeKubeError(err, w.def) });
      }
    }
  }
}

function crName(cr: KubernetesObject): string {
  return cr.metadata?.namespace ? `${cr.metadata.namespace}/${cr.metadata.name ?? ''}` : (cr.metadata?.name ?? '');
}

function crKey(def: KindDef, cr: KubernetesObject): string {
  return keyOf({ kind: def.kind, name: cr.metadata?.name ?? '', ...(def.namespaced && cr.metadata?.namespace ? { namespace: cr.metadata.namespace } : {}) });
}

function findPlural(kind: string): string {
  return CRD_KINDS.find((k) => k.kind === kind)?.plural ?? kind.toLowerCase();
}

/** What the hub compares: spec, labels and annotations (status is the hub's own). */
function sameContent(a: ApiObject, b: ApiObject): boolean {
  return JSON.stringify([a.spec, a.metadata.labels ?? {}, a.metadata.annotations ?? {}]) === JSON.stringify([b.spec, b.metadata.labels ?? {}, b.metadata.annotations ?? {}]);
}

/** A client-node failure in words: the HTTP code and the API server's message; a 404 says to install the CRDs. */
export function describeKubeError(err: unknown, def: KindDef): string {
  const e = err as { code?: unknown; statusCode?: unknown; body?: unknown; message?: unknown };
  const code = typeof e?.code === 'number' ? e.code : typeof e?.statusCode === 'number' ? e.statusCode : undefined;
  if (code === 404) return `${def.plural}.${GROUP} is not served by the cluster: install the CRDs (meshfed crds | kubectl apply -f -)`;
  let detail = '';
  if (typeof e?.body === 'string') {
    try {
      detail = String((JSON.parse(e.body) as { message?: unknown }).message ?? '');
    } catch {
      detail = e.body.slice(0, 200);
    }
  }
  if (code === 403) return `forbidden: the hub may not list/watch ${def.plural}.${GROUP}${detail ? `: ${detail}` : ''}`;
  return code !== undefined ? `HTTP ${code}${detail ? `: ${detail}` : ''}` : errorMessage(err);
}
