// The hub's HTTP API, used by the CLI (and later the UI):
//   GET    /healthz
//   GET    /api/v1alpha1/{plural}[?namespace=&cluster=]      list
//   GET    /api/v1alpha1/{plural}?watch=1[&revision=N]      watch (newline-delimited JSON events)
//   GET    /api/v1alpha1/{plural}/{name}[?namespace=&cluster=]
//   POST   /api/v1alpha1/apply            body: YAML or JSON (one or many objects); all or nothing
//   DELETE /api/v1alpha1/{plural}/{name}[?namespace=]
//   GET    /api/v1alpha1/globalservices   the federated view (read-only, computed)
//   GET    /api/v1alpha1/agents           connected agent sessions
//   GET    /api/v1alpha1/hub              the hub process: revision, memory, view fan-out (scopes, cached full views, logs)
//   POST   /api/v1alpha1/hub/gc           full GC when started with node --expose-gc (benchmarks), else nothing
//   POST   /api/v1alpha1/plan             body: objects to apply; a dry run (nothing is written): per-cluster xDS diff, traffic split before/after
//   POST   /api/v1alpha1/clusters/{name}/join-token   body {ttl?, spec?}: creates the Cluster if absent (with spec), answers a one-time join token
//   GET    /api/v1alpha1/trust            roots, rotation phase, what each cluster was issued, warnings
//   POST   /api/v1alpha1/trust/rotate-root   body {step: add|activate|retire, force?}
//   POST   /api/v1alpha1/explain          body: {from, to, method?, with?}: route, endpoints and the access verdict of a call (nothing is written)
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import {
  API_VERSION,
  findKind,
  InvalidInputError,
  parseAndValidate,
  validateObject,
  type ApiObject,
  type Cluster,
  type Mesh,
  type ObjectRef,
  type Service,
  type Workload,
} from '../api/index.js';
import { DURATION, durationMs } from '../api/duration.js';
import { federate } from '../federation/federate.js';
import { computePlan } from '../policies/plan.js';
import { explain, ExplainError, type ExplainRequest, type ExplainResult } from '../policies/explain.js';
import { POLICY_KINDS, policySet, policyStatuses } from '../policies/resolve.js';
import { isRevisionCompacted, type Store } from '../store/store.js';
import { logger } from '../util/log.js';
import { collectGarbage, memoryMB } from '../util/memory.js';
import type { AgentSessions } from './agent-sessions.js';
import { ApiError, applyObjects, deleteObjects } from './objects.js';
import { expiryWarning, TrustError, type HubTrust } from './trust.js';

const log = logger('hub.api');
const MAX_BODY = 8 * 1024 * 1024;

export function createHubHttpServer(store: Store, sessions: AgentSessions, trust: HubTrust, secure: boolean): Server {
  return createServer((req, res) => {
    handle(store, sessions, trust, secure, req, res).catch((err: unknown) => sendError(res, err));
  });
}

async function handle(store: Store, sessions: AgentSessions, trust: HubTrust, secure: boolean, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://hub');
  const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
  if (url.pathname === '/healthz') return sendJson(res, 200, { ok: true, revision: store.revision() });
  if (parts[0] !== 'api' || parts[1] !== 'v1alpha1') throw new ApiError(404, 'NotFound', `no route for ${url.pathname}`);
  const [, , resource, name] = parts;
  if (!resource) throw new ApiError(404, 'NotFound', 'resource missing in path');
  const q = url.searchParams;

  if (resource === 'apply' && req.method === 'POST') {
    const objects = await objectsFromBody(req, q.get('source') ?? 'request');
    const results = await applyObjects(store, objects);
    log.info('apply', { results: results.map((r) => `${r.object} ${r.outcome}`) });
    return sendJson(res, 200, { results, revision: store.revision() });
  }
  if (resource === 'globalservices' && req.method === 'GET') {
    const view = federate({
      clusters: (await store.list({ kind: 'Cluster' })) as Cluster[],
      mesh: (await store.list({ kind: 'Mesh' }))[0] as Mesh | undefined,
      services: (await store.list({ kind: 'Service' })) as Service[],
      workloads: (await store.list({ kind: 'Workload' })) as Workload[],
    });
    return sendJson(res, 200, { items: view.services, clusters: view.clusters, revision: store.revision() });
  }
  if (resource === 'plan' && req.method === 'POST') {
    const objects = await objectsFromBody(req, q.get('source') ?? 'request');
    for (const o of objects) {
      if (findKind(o.kind)?.discovered) throw new ApiError(400, 'ReadOnlyKind', `${o.kind} objects are reported by agents; plan applies user objects only`);
    }
    const current: ApiObject[] = [];
    for (const kind of ['Cluster', 'Mesh', 'Service', 'Workload', ...POLICY_KINDS]) current.push(...(await store.list({ kind })));
    return sendJson(res, 200, { ...computePlan(current, objects), revision: store.revision() });
  }
  if (resource === 'explain' && req.method === 'POST') return sendJson(res, 200, { ...(await explainRequest(store, await readBody(req))), revision: store.revision() });
  if (resource === 'agents' && req.method === 'GET') return sendJson(res, 200, { items: sessions.list() });
  if (resource === 'clusters' && name && parts[4] === 'join-token' && req.method === 'POST') {
    return sendJson(res, 200, await joinToken(store, trust, secure, name, await readBody(req)));
  }
  if (resource === 'trust' && !name && req.method === 'GET') {
    return sendJson(res, 200, trustStatus(store, sessions, trust, secure, await store.list({ kind: 'Cluster' })));
  }
  if (resource === 'trust' && name === 'rotate-root' && req.method === 'POST') {
    const body = parseJsonBody(await readBody(req)) as { step?: unknown; force?: unknown };
    const step = body.step ?? 'add';
    if (step !== 'add' && step !== 'activate' && step !== 'retire') throw new ApiError(400, 'Invalid', `step: "${String(step)}" is not add, activate or retire`);
    const clusters = (await store.list({ kind: 'Cluster' })).map((c) => c.metadata.name);
    try {
      await trust.rotateRoot(step, { force: body.force === true, clusters });
    } catch (err) {
      if (err instanceof TrustError) throw new ApiError(err.httpStatus, err.reason, err.message);
      throw err;
    }
    log.info('trust rotate-root', { step });
    return sendJson(res, 200, trustStatus(store, sessions, trust, secure, await store.list({ kind: 'Cluster' })));
  }
  if (resource === 'hub' && req.method === 'GET') {
    return sendJson(res, 200, { revision: store.revision(), memory: memoryMB(), views: sessions.viewStats() });
  }
  if (resource === 'hub' && name === 'gc' && req.method === 'POST') {
    // Only with node --expose-gc (benchmarks); a no-op otherwise.
    return sendJson(res, 200, { collected: collectGarbage(), memory: memoryMB() });
  }
  if (resource === 'proxies' && req.method === 'GET') {
    return sendJson(res, 200, { revision: store.revision(), clusters: sessions.proxies() });
  }

  const def = findKind(resource);
  if (!def) throw new ApiError(404, 'UnknownKind', `unknown resource "${resource}"`);
  const ref = (n: string): ObjectRef => {
    const r: ObjectRef = { kind: def.kind, name: n };
    const ns = q.get('namespace');
    const cl = q.get('cluster');
    if (def.namespaced) {
      if (!ns) throw new ApiError(400, 'Invalid', `${def.kind} is namespaced: pass ?namespace=`);
      r.namespace = ns;
    }
    if (def.discovered) {
      if (!cl) throw new ApiError(400, 'Invalid', `${def.kind} belongs to a cluster: pass ?cluster=`);
      r.cluster = cl;
    }
    return r;
  };

  if (req.method === 'GET' && !name && q.get('watch')) return watch(store, def.kind, q, req, res);
  if (req.method === 'GET' && !name) {
    const filter: { kind: string; namespace?: string; cluster?: string } = { kind: def.kind };
    if (q.get('namespace')) filter.namespace = q.get('namespace')!;
    if (q.get('cluster')) filter.cluster = q.get('cluster')!;
    const items = await store.list(filter);
    return sendJson(res, 200, { items: await withStatus(store, def.kind, items), revision: store.revision() });
  }
  if (req.method === 'GET' && name) {
    const obj = await store.get(ref(name));
    if (!obj) throw new ApiError(404, 'NotFound', `${def.kind} "${name}" not found`);
    return sendJson(res, 200, (await withStatus(store, def.kind, [obj]))[0]);
  }
  if (req.method === 'DELETE' && name) {
    const r = ref(name);
    const results = await deleteObjects(store, [r]);
    if (results[0]?.outcome === 'not-found') throw new ApiError(404, 'NotFound', `${def.kind} "${name}" not found`);
    if (def.kind === 'Cluster' && results[0]?.outcome === 'deleted') {
      // Revoked (persisted) before the answer: a reconnect with the old certificate is refused.
      await trust.revokeCluster(name, `cluster "${name}" was deleted at the hub`);
      sessions.disconnect(name, `cluster "${name}" was deleted at the hub`);
    }
    log.info('delete', { results: results.map((x) => `${x.object} ${x.outcome}`) });
    return sendJson(res, 200, { results, revision: store.revision() });
  }
  throw new ApiError(405, 'MethodNotAllowed', `${req.method} is not supported on ${url.pathname}`);
}

function parseJsonBody(text: string): Record<string, unknown> {
  if (!text.trim()) return {};
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new ApiError(400, 'Invalid', `request body is not JSON: ${(err as Error).message}`);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new ApiError(400, 'Invalid', 'request body must be a JSON object');
  return v as Record<string, unknown>;
}

function trustStatus(store: Store, sessions: AgentSessions, trust: HubTrust, secure: boolean, clusters: ApiObject[]): unknown {
  const st = trust.status({ clusters: clusters.map((c) => c.metadata.name), connected: new Set(sessions.list().map((s) => s.cluster)), channel: secure ? 'mtls' : 'insecure' });
  const now = new Date();
  // Workload certificates as the connected agents last reported them; a
  // workload whose helper stopped renewing shows up here before it expires.
  const workloads = sessions
    .workloadCertificates()
    .map((w) => ({ ...w, warning: expiryWarning(`workload certificate ${w.spiffeId}`, w.notBefore, w.notAfter, now) }))
    .sort((a, b) => (a.spiffeId < b.spiffeId ? -1 : 1));
  return { ...st, workloads, warnings: [...st.warnings, ...workloads.flatMap((w) => (w.warning ? [w.warning] : []))], revision: store.revision() };
}

/**
 * `meshfed cluster add`: the Cluster (created when absent, from `spec`) and a
 * one-time join token. An existing Cluster is never changed here: a spec that
 * differs is a conflict, so a typo cannot move a cluster to another region.
 */
async function joinToken(store: Store, trust: HubTrust, secure: boolean, name: string, bodyText: string): Promise<unknown> {
  const body = parseJsonBody(bodyText) as { ttl?: unknown; spec?: unknown };
  const ttl = body.ttl ?? '1h';
  if (typeof ttl !== 'string' || !new RegExp(DURATION).test(ttl)) throw new ApiError(400, 'Invalid', `ttl: "${String(ttl)}" is not a duration (e.g. 30m, 1h, 2d)`);
  const ttlMs = durationMs(ttl);
  if (ttlMs < 1000) throw new ApiError(400, 'Invalid', `ttl: ${ttl} is shorter than 1s`);
  const existing = (await store.get({ kind: 'Cluster', name })) as Cluster | undefined;
  let created = false;
  if (!existing) {
    if (!body.spec) throw new ApiError(404, 'NotFound', `Cluster "${name}" does not exist: give its region and zones to create it (meshfed cluster add ${name} --region R --zones a,b)`);
    const r = validateObject({ apiVersion: API_VERSION, kind: 'Cluster', metadata: { name }, spec: body.spec });
    if (!r.ok) throw new ApiError(400, 'Invalid', `Cluster ${name}: ${r.errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`, r.errors);
    await applyObjects(store, [r.value]);
    created = true;
  } else if (body.spec && typeof body.spec === 'object') {
    const want = body.spec as Partial<Cluster['spec']>;
    const diffs: string[] = [];
    if (want.network !== undefined && want.network !== existing.spec.network) diffs.push(`network is "${existing.spec.network}", not "${want.network}"`);
    if (want.region !== undefined && want.region !== existing.spec.region) diffs.push(`region is "${existing.spec.region}", not "${want.region}"`);
    if (want.zones !== undefined && JSON.stringify(want.zones) !== JSON.stringify(existing.spec.zones)) diffs.push(`zones are ${existing.spec.zones.join(',')}, not ${want.zones.join(',')}`);
    if (diffs.length) throw new ApiError(409, 'Conflict', `Cluster "${name}" exists and ${diffs.join('; ')}: change it with meshfed apply, or leave those flags out to only get a token`);
  }
  if (!secure) {
    return { cluster: name, created, channel: 'insecure', message: 'the hub runs with --insecure-channel: agents connect without a token (start them with --insecure-channel)' };
  }
  const t = await trust.createJoinToken(name, ttlMs);
  log.info('cluster add', { cluster: name, created, token: t.id, expiresAt: t.expiresAt });
  return { cluster: name, created, channel: 'mtls', token: t.token, tokenId: t.id, expiresAt: t.expiresAt, caFingerprints: t.pins, trustDomain: trust.trustDomain() };
}

function watch(store: Store, kind: string, q: URLSearchParams, req: IncomingMessage, res: ServerResponse): void {
  const from = Number(q.get('revision') ?? store.revision());
  let stop: (() => void) | undefined;
  try {
    stop = store.watch(from, (e) => {
      if (e.object.kind === kind) res.write(JSON.stringify(e) + '\n');
    });
  } catch (err) {
    if (isRevisionCompacted(err)) throw new ApiError(410, 'Gone', err.message);
    throw err;
  }
  res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-cache' });
  res.write(JSON.stringify({ type: 'BOOKMARK', revision: store.revision() }) + '\n');
  req.on('close', () => stop?.());
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new ApiError(413, 'TooLarge', `request body exceeds ${MAX_BODY} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const data = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) });
  res.end(data);
}

function sendError(res: ServerResponse, err: unknown): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (err instanceof ApiError) return sendJson(res, err.status, { error: err.message, reason: err.reason, details: err.details });
  log.error('request failed', { error: err instanceof Error ? err.stack : String(err) });
  sendJson(res, 500, { error: `internal error: ${err instanceof Error ? err.message : String(err)}`, reason: 'Internal' });
}

/** Status computed at read time: Cluster counts, policy status (selection, conflicts, problems). */
async function withStatus(store: Store, kind: string, items: ApiObject[]): Promise<ApiObject[]> {
  if (kind === 'Cluster') return withCounts(store, items);
  if (!POLICY_KINDS.has(kind) || items.length === 0) return items;
  const view = federate({
    clusters: (await store.list({ kind: 'Cluster' })) as Cluster[],
    mesh: (await store.list({ kind: 'Mesh' }))[0] as Mesh | undefined,
    services: (await store.list({ kind: 'Service' })) as Service[],
    workloads: (await store.list({ kind: 'Workload' })) as Workload[],
  });
  const all: ApiObject[] = [];
  for (const k of POLICY_KINDS) all.push(...(await store.list({ kind: k })));
  const statuses = policyStatuses(view, policySet(all), (await store.list({ kind: 'Mesh' }))[0] as Mesh | undefined);
  return items.map((o) => {
    const st = statuses.get(`${o.kind} ${o.metadata.namespace ?? ''}/${o.metadata.name}`);
    return st ? { ...o, status: st } : o;
  });
}

/**
 * Clusters with how many services and workloads their agents reported. Counted
 * at read time: storing counts would rewrite the Cluster (and push it to every
 * agent) on every report.
 */
async function withCounts(store: Store, clusters: ApiObject[]): Promise<ApiObject[]> {
  return Promise.all(
    clusters.map(async (c) => ({
      ...c,
      status: {
        ...((c.status as object | undefined) ?? {}),
        services: await store.count({ kind: 'Service', cluster: c.metadata.name }),
        workloads: await store.count({ kind: 'Workload', cluster: c.metadata.name }),
      },
    })),
  );
}

/** `meshfed explain` at the hub: computed from the store's current objects (and the dry-run objects in `with`). */
async function explainRequest(store: Store, body: string): Promise<ExplainResult> {
  let req: Partial<ExplainRequest> & { with?: unknown };
  try {
    req = JSON.parse(body) as typeof req;
  } catch (err) {
    throw new ApiError(400, 'Invalid', `request body is not JSON: ${String(err)}`);
  }
  const from = req.from;
  if (!from || typeof from.cluster !== 'string' || typeof from.namespace !== 'string' || typeof from.workload !== 'string') {
    throw new ApiError(400, 'Invalid', 'from: {cluster, namespace, workload[, serviceAccount]} is required');
  }
  if (typeof req.to !== 'string' || !req.to) throw new ApiError(400, 'Invalid', 'to: the service to call is required (name[.namespace])');
  const r: ExplainRequest = { from, to: req.to };
  if (req.method !== undefined) r.method = String(req.method);
  if (req.with !== undefined) {
    try {
      r.with = parseAndValidate(JSON.stringify(req.with), 'with');
    } catch (err) {
      if (err instanceof InvalidInputError) throw new ApiError(400, 'Invalid', err.message, err.problems);
      throw err;
    }
    for (const o of r.with) if (findKind(o.kind)?.discovered) throw new ApiError(400, 'ReadOnlyKind', `with: ${o.kind} objects are reported by agents`);
  }
  const current: ApiObject[] = [];
  for (const kind of ['Cluster', 'Mesh', 'Service', 'Workload', ...POLICY_KINDS]) current.push(...(await store.list({ kind })));
  try {
    return explain(current, r);
  } catch (err) {
    if (err instanceof ExplainError) throw new ApiError(err.field === 'from' || err.field === 'to' ? 404 : 400, 'Invalid', err.message);
    throw err;
  }
}

/** Objects in a request body (YAML or JSON, validated all or nothing), or a 400 naming what is wrong. */
async function objectsFromBody(req: IncomingMessage, source: string): Promise<ApiObject[]> {
  let objects: ApiObject[];
  try {
    objects = parseAndValidate(await readBody(req), source);
  } catch (err) {
    if (err instanceof InvalidInputError) throw new ApiError(400, 'Invalid', err.message, err.problems);
    throw err;
  }
  if (objects.length === 0) throw new ApiError(400, 'Invalid', 'no objects in the request');
  return objects;
}
