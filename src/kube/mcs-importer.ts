// The MCS importer: keeps a Kubernetes cluster's ServiceImports, EndpointSlices
// and ServiceExport conditions what the agent's federated view says
// (src/translate/mcs computes them; this writes them).
//
// Invariants:
// - level-triggered: every reconcile recomputes the whole desired set from the
//   current view and the cluster's current objects, never from deltas; so a
//   missed notification, a restart or an API server that was away changes
//   nothing once a reconcile succeeds;
// - serial and coalesced: at most one reconcile runs; update() only marks the
//   state dirty (a flag, never a queue) and a reconcile starts DEBOUNCE_MS after
//   the first mark; a mark during a run causes exactly one more run;
// - writes are server-side applies by field manager `meshfed-agent` (forced),
//   status through the status subresource; an object that already holds what
//   is desired is not written;
// - meshfed touches only objects labelled as its own for this cluster
//   (ownedSelector): it never applies over an object of the same name that is
//   not (reported instead) and garbage-collects only labelled objects;
// - until the view is complete (view() returns undefined) nothing is written or
//   deleted: an agent that has not loaded its view must not empty the cluster;
// - errors back off exponentially (capped); a periodic resync repairs drift.
import type { KubeConfig } from '@kubernetes/client-node';
import type { FederatedView } from '../federation/types.js';
import {
  MCS_API_VERSION,
  MCS_SERVICE_NAME_LABEL,
  ownedSelector,
  translateMcs,
  type Condition,
  type EndpointSlice,
  type LocalServiceExport,
  type ServiceExportStatus,
  type ServiceImport,
  type SkippedService,
} from '../translate/mcs/index.js';
import { errorMessage, MeshfedError } from '../util/errors.js';
import { logger } from '../util/log.js';
import { SerialQueue } from '../util/serial.js';
import { isNotFound, KubeApiError, KubeRest, type KubeListed } from './mcs-rest.js';

const log = logger('mcs-import');

export const FIELD_MANAGER = 'meshfed-agent';
/** Hash of what meshfed applied, so a field it stopped setting is noticed (and removed by the next apply). */
const HASH_ANNOTATION = 'meshfed.io/applied-hash';
/** Bounds of what the status keeps. */
const MAX_REPORTED = 50;

const PATHS = {
  namespaces: '/api/v1/namespaces',
  serviceExports: '/apis/multicluster.x-k8s.io/v1alpha1/serviceexports',
  serviceImports: '/apis/multicluster.x-k8s.io/v1alpha1/serviceimports',
  endpointSlices: '/apis/discovery.k8s.io/v1/endpointslices',
};

function objectPath(kind: 'ServiceImport' | 'EndpointSlice' | 'ServiceExport', namespace: string, name: string): string {
  const [base, plural] =
    kind === 'EndpointSlice' ? ['/apis/discovery.k8s.io/v1', 'endpointslices'] : ['/apis/multicluster.x-k8s.io/v1alpha1', kind === 'ServiceImport' ? 'serviceimports' : 'serviceexports'];
  return `${base}/namespaces/${encodeURIComponent(namespace)}/${plural}/${encodeURIComponent(name)}`;
}

export interface McsImporterOptions {
  kubeConfig: KubeConfig;
  cluster: string;
  /** The agent's current federated view; undefined while it is not complete (nothing is written then). */
  view: () => FederatedView | undefined;
  /** Namespaces the agent imports (empty or unset: all). */
  importNamespaces?: readonly string[];
  /** Coalescing window after a change (ms). */
  debounceMs?: number;
  /** Full reconcile this often even without a change (ms): repairs drift. */
  resyncMs?: number;
  /** First and longest wait after a failed reconcile (ms). */
  backoffMs?: number;
  maxBackoffMs?: number;
}

export interface McsImportStatus {
  /** The API server written to. */
  server: string;
  /** What the last reconcile held as desired. */
  objects: { serviceImports: number; endpointSlices: number; serviceExports: number };
  /** Writes (applies and deletes) since start, and in the last reconcile. */
  writes: number;
  lastReconcile?: { at: string; ms: number; applied: number; deleted: number; unchanged: number };
  lastSuccess?: string;
  /** The last failure: the object and the API server's message. Cleared by a success. */
  lastError?: string;
  failingSince?: string;
  /** Services left out (missing namespace, names taken by objects not meshfed's, bad endpoints), at most MAX_REPORTED. */
  skipped: SkippedService[];
  skippedTotal: number;
  /** Why nothing is written yet, when so. */
  waiting?: string;
}

interface ReconcileResult {
  applied: number;
  deleted: number;
  unchanged: number;
  errors: string[];
  skipped: SkippedService[];
  objects: McsImportStatus['objects'];
}

export class McsImporter {
  private readonly rest: KubeRest;
  private readonly serial = new SerialQueue();
  private readonly debounceMs: number;
  private readonly resyncMs: number;
  private readonly backoffMs: number;
  private readonly maxBackoffMs: number;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;
  private running = false;
  private dirty = false;
  private stopped = true;
  private failures = 0;
  private readonly st: McsImportStatus;

  constructor(private readonly opts: McsImporterOptions) {
    this.rest = new KubeRest(opts.kubeConfig);
    this.debounceMs = opts.debounceMs ?? 150;
    this.resyncMs = opts.resyncMs ?? 60_000;
    this.backoffMs = opts.backoffMs ?? 500;
    this.maxBackoffMs = opts.maxBackoffMs ?? 30_000;
    this.st = { server: this.rest.serverUrl, objects: { serviceImports: 0, endpointSlices: 0, serviceExports: 0 }, writes: 0, skipped: [], skippedTotal: 0 };
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.update();
  }

  /** The view changed (or may have): a reconcile follows within the debounce window. */
  update(): void {
    if (this.stopped) return;
    this.dirty = true;
    if (!this.running) this.schedule(this.failures > 0 ? this.backoff() : this.debounceMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.clearTimer();
    this.rest.abortAll();
    await this.serial.run(() => Promise.resolve());
  }

  status(): McsImportStatus {
    return { ...this.st, objects: { ...this.st.objects }, skipped: [...this.st.skipped] };
  }

  /** Runs one reconcile now (serially with any other, started or not); resolves when it is done. */
  async reconcileNow(): Promise<void> {
    this.clearTimer();
    this.dirty = true;
    await this.serial.run(() => this.runOnce(true));
  }

  private schedule(ms: number): void {
    const at = Date.now() + ms;
    if (this.timer && this.timerAt <= at) return; // an earlier run is already due
    this.clearTimer();
    this.timerAt = at;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.timerAt = Infinity;
      void this.serial.run(() => this.runOnce());
    }, ms);
    this.timer.unref();
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Infinity;
  }

  private backoff(): number {
    const base = Math.min(this.maxBackoffMs, this.backoffMs * 2 ** Math.min(this.failures - 1, 20));
    return Math.round(base * (0.8 + Math.random() * 0.4));
  }

  /** One reconcile; `force`: even when not started (reconcileNow). */
  private async runOnce(force = false): Promise<void> {
    if (this.stopped && !force) return;
    this.running = true;
    this.dirty = false;
    const t0 = Date.now();
    let ok = false;
    try {
      const view = this.opts.view();
      if (!view) {
        this.st.waiting = 'waiting for a complete federated view';
        ok = true;
        return;
      }
      delete this.st.waiting;
      const r = await this.reconcile(view);
      this.st.objects = r.objects;
      this.st.skipped = r.skipped.slice(0, MAX_REPORTED);
      this.st.skippedTotal = r.skipped.length;
      this.st.writes += r.applied + r.deleted;
      this.st.lastReconcile = { at: new Date().toISOString(), ms: Date.now() - t0, applied: r.applied, deleted: r.deleted, unchanged: r.unchanged };
      if (r.errors.length > 0) throw new MeshfedError('unavailable', r.errors.length === 1 ? r.errors[0]! : `${r.errors[0]!} (and ${r.errors.length - 1} more failed writes)`);
      ok = true;
      if (r.applied + r.deleted > 0) log.info('MCS objects reconciled', { applied: r.applied, deleted: r.deleted, unchanged: r.unchanged, ms: Date.now() - t0 });
    } catch (err) {
      this.failures++;
      this.st.lastError = errorMessage(err);
      this.st.failingSince ??= new Date().toISOString();
      log.warn('MCS import reconcile failed; retrying', { error: this.st.lastError, attempt: this.failures });
    } finally {
      this.running = false;
      if (ok) {
        this.failures = 0;
        this.st.lastSuccess = new Date().toISOString();
        delete this.st.lastError;
        delete this.st.failingSince;
      }
      if (!this.stopped) {
        if (!ok) this.schedule(this.backoff());
        else if (this.dirty) this.schedule(this.debounceMs);
        else this.schedule(this.resyncMs);
      }
    }
  }

  /** One level-triggered pass: read the cluster, compute the desired set, write the difference. */
  private async reconcile(view: FederatedView): Promise<ReconcileResult> {
    const selector = ownedSelector(this.opts.cluster);
    const [namespaces, exportsListed, importsListed, slicesListed] = await Promise.all([
      this.rest.list(PATHS.namespaces),
      this.rest.list(PATHS.serviceExports).catch(crdHint('serviceexports')),
      this.rest.list(PATHS.serviceImports, selector).catch(crdHint('serviceimports')),
      this.rest.list(PATHS.endpointSlices, selector),
    ]);
    const serviceExports: LocalServiceExport[] = exportsListed.map((o) => {
      const se: LocalServiceExport = { namespace: o.metadata.namespace ?? '', name: o.metadata.name };
      if (o.metadata.generation !== undefined) se.generation = o.metadata.generation;
      const conditions = (o['status'] as { conditions?: Condition[] } | undefined)?.conditions;
      if (Array.isArray(conditions)) se.conditions = conditions;
      return se;
    });
    const desired = translateMcs({
      cluster: this.opts.cluster,
      view,
      ...(this.opts.importNamespaces ? { importNamespaces: this.opts.importNamespaces } : {}),
      namespaces: new Set(namespaces.map((n) => n.metadata.name)),
      serviceExports,
      now: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    });
    const r: ReconcileResult = {
      applied: 0,
      deleted: 0,
      unchanged: 0,
      errors: [],
      skipped: desired.skipped,
      objects: { serviceImports: desired.serviceImports.length, endpointSlices: desired.endpointSlices.length, serviceExports: desired.exportStatuses.length },
    };
    const owned = { ServiceImport: byKey(importsListed), EndpointSlice: byKey(slicesListed) };
    // ServiceImports first, so a slice never points at a service that has no ServiceImport yet.
    const takenImports = new Set<string>();
    for (const si of desired.serviceImports) {
      const applied = await this.ensure('ServiceImport', si, owned.ServiceImport, r);
      if (!applied) takenImports.add(`${si.metadata.namespace}/${si.metadata.name}`);
    }
    // The slices of a service whose ServiceImport is someone else's stay unwritten (and are collected if they were written).
    const slices = desired.endpointSlices.filter((s) => !takenImports.has(`${s.metadata.namespace}/${s.metadata.labels?.[MCS_SERVICE_NAME_LABEL] ?? ''}`));
    for (const s of slices) await this.ensure('EndpointSlice', s, owned.EndpointSlice, r);
    for (const st of desired.exportStatuses) await this.ensureExportStatus(st, exportsListed, r);
    // Garbage: labelled as this agent's, not desired any more.
    const wanted = new Set([...desired.serviceImports, ...slices].map((o) => `${o.kind}/${o.metadata.namespace}/${o.metadata.name}`));
    for (const [kind, objects] of Object.entries(owned) as ['ServiceImport' | 'EndpointSlice', Map<string, KubeListed>][]) {
      for (const [key, o] of objects) {
        if (wanted.has(`${kind}/${key}`)) continue;
        await this.write(r, `delete ${kind} ${key}`, async () => {
          try {
            await this.rest.delete(objectPath(kind, o.metadata.namespace ?? '', o.metadata.name));
          } catch (err) {
            if (!isNotFound(err)) throw err;
          }
          r.deleted++;
        });
      }
    }
    return r;
  }

  /** Applies one desired object unless the cluster already holds it; false when it was not written (taken, or failed). */
  private async ensure(kind: 'ServiceImport' | 'EndpointSlice', desired: ServiceImport | EndpointSlice, owned: Map<string, KubeListed>, r: ReconcileResult): Promise<boolean> {
    const ns = desired.metadata.namespace;
    const name = desired.metadata.name;
    const key = `${ns}/${name}`;
    const path = objectPath(kind, ns, name);
    const { status, ...main } = desired as ServiceImport & { status?: ServiceImport['status'] };
    const body = withHash(main);
    const existing = owned.get(key);
    let taken = false;
    const ok = await this.write(r, `${kind} ${key}`, async () => {
      let current = existing;
      if (!current) {
        // Not labelled as ours: an object of that name may be someone else's; never take it over.
        const other = await this.rest.get(path).catch((err: unknown) => {
          if (isNotFound(err)) return undefined;
          throw err;
        });
        if (other) {
          taken = true;
          r.skipped.push({
            namespace: ns,
            name: kind === 'ServiceImport' ? name : (desired.metadata.labels?.['multicluster.kubernetes.io/service-name'] ?? name),
            reason: `${kind} ${key} exists and is not meshfed's (no label ${ownedSelector(this.opts.cluster)}); meshfed leaves it alone`,
          });
          return;
        }
      }
      // List items may lack apiVersion and kind (the real server leaves them out of typed lists).
      const { apiVersion: _v, kind: _k, ...fields } = body;
      if (current && covers(current, fields)) r.unchanged++;
      else {
        current = await this.rest.apply(path, body, FIELD_MANAGER);
        r.applied++;
      }
      if (status !== undefined && !covers((current['status'] ?? {}) as Record<string, unknown>, status)) {
        await this.rest.apply(`${path}/status`, { apiVersion: desired.apiVersion, kind: desired.kind, metadata: { name, namespace: ns }, status }, FIELD_MANAGER);
        r.applied++;
      }
    });
    return ok && !taken;
  }

  private async ensureExportStatus(st: ServiceExportStatus, listed: KubeListed[], r: ReconcileResult): Promise<void> {
    const key = `${st.metadata.namespace}/${st.metadata.name}`;
    const current = listed.find((o) => o.metadata.namespace === st.metadata.namespace && o.metadata.name === st.metadata.name);
    const conditions = (current?.['status'] as { conditions?: unknown } | undefined)?.conditions;
    if (Array.isArray(conditions) && sameConditions(conditions as Condition[], st.status.conditions)) {
      r.unchanged++;
      return;
    }
    await this.write(r, `ServiceExport ${key} status`, async () => {
      try {
        await this.rest.apply(`${objectPath('ServiceExport', st.metadata.namespace, st.metadata.name)}/status`, { ...st, apiVersion: MCS_API_VERSION }, FIELD_MANAGER);
        r.applied++;
      } catch (err) {
        if (!isNotFound(err)) throw err; // deleted since the list: nothing to report on
      }
    });
  }

  /**
   * One write. An API error is recorded, naming the object, and the pass goes
   * on with the other objects (false); a connection failure ends the pass
   * (every other write would fail the same way).
   */
  private async write(r: ReconcileResult, what: string, fn: () => Promise<void>): Promise<boolean> {
    try {
      await fn();
      return true;
    } catch (err) {
      const message = `${what}: ${errorMessage(err)}`;
      if (err instanceof MeshfedError && err.code === 'unavailable' && !(err instanceof KubeApiError)) throw new MeshfedError('unavailable', message, { cause: err });
      r.errors.push(message);
      return false;
    }
  }
}

/** A 404 on an MCS list means the cluster lacks the CRD: say which and where it comes from. */
function crdHint(plural: string): (err: unknown) => never {
  return (err) => {
    if (isNotFound(err)) throw new MeshfedError('not-found', `${errorMessage(err)} (is the CRD ${plural}.multicluster.x-k8s.io of the MCS API, kubernetes-sigs/mcs-api, installed in this cluster?)`);
    throw err;
  };
}

function byKey(items: KubeListed[]): Map<string, KubeListed> {
  return new Map(items.map((o) => [`${o.metadata.namespace ?? ''}/${o.metadata.name}`, o]));
}

/** The object with meshfed's hash of it as an annotation. */
function withHash<T extends { metadata: { annotations?: Record<string, string> } }>(o: T): T {
  const h = fnv(JSON.stringify(o));
  return { ...o, metadata: { ...o.metadata, annotations: { ...o.metadata.annotations, [HASH_ANNOTATION]: h } } };
}

function fnv(s: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, '0');
}

/** Whether `have` holds every field of `want` with its value (arrays: same length, item by item). */
function covers(have: unknown, want: unknown): boolean {
  if (Array.isArray(want)) return Array.isArray(have) && have.length === want.length && want.every((w, i) => covers(have[i], w));
  if (want !== null && typeof want === 'object') {
    if (have === null || typeof have !== 'object' || Array.isArray(have)) return false;
    const h = have as Record<string, unknown>;
    return Object.entries(want as Record<string, unknown>).every(([k, v]) => covers(h[k], v));
  }
  return have === want;
}

/** The condition types meshfed writes on a ServiceExport (others' conditions do not count). */
const EXPORT_CONDITION_TYPES = new Set(['Valid', 'Ready', 'Conflict']);

function sameConditions(have: Condition[], want: Condition[]): boolean {
  const mine = have.filter((h) => h !== null && typeof h === 'object' && EXPORT_CONDITION_TYPES.has(h.type));
  return (
    mine.length === want.length &&
    want.every((w) =>
      covers(
        mine.find((h) => h.type === w.type),
        w,
      ),
    )
  );
}
