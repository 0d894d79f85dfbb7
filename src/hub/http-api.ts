// The hub's HTTP API router, used by the CLI (and later the UI): it parses the
// URL and method, reads bounded bodies, dispatches to the handlers
// (api-status.ts, api-dry-run.ts, api-trust.ts, objects.ts) and writes JSON
// answers. Errors are answered in one place: a MeshfedError with its HTTP
// status and the body {error, reason, details}; anything else is a 500
// {error: "internal error: ...", reason: "Internal"}.
//   GET    /healthz
//   GET    /api/v1alpha1/{plural}[?namespace=&cluster=]      list
//   GET    /api/v1alpha1/{plural}?watch=1[&revision=N]      watch (newline-delimited JSON events; a watcher that does not read is dropped, see watch())
//   GET    /api/v1alpha1/{plural}/{name}[?namespace=&cluster=]
//   POST   /api/v1alpha1/apply            body: YAML or JSON (one or many objects); all or nothing
//   DELETE /api/v1alpha1/{plural}/{name}[?namespace=]
//   GET    /api/v1alpha1/globalservices   the federated view (read-only, computed)
//   GET    /api/v1alpha1/agents           connected agent sessions
//   GET    /api/v1alpha1/hub[?resetEventLoop=1]   the hub process: revision, memory, event-loop delay, view fan-out (scopes, cached full views, logs)
//   POST   /api/v1alpha1/hub/gc           full GC when started with node --expose-gc (benchmarks), else nothing
//   GET    /api/v1alpha1/proxies          the data planes each agent last reported
//   POST   /api/v1alpha1/plan             body: objects to apply; a dry run (nothing is written): per-cluster xDS diff, traffic split before/after
//   POST   /api/v1alpha1/clusters/{name}/join-token   body {ttl?, spec?}: creates the Cluster if absent (with spec), answers a one-time join token
//   GET    /api/v1alpha1/trust            roots, rotation phase, what each cluster was issued, warnings
//   POST   /api/v1alpha1/trust/rotate-root   body {step: add|activate|retire, force?}
//   POST   /api/v1alpha1/explain          body: {from, to, method?, with?}: route, endpoints and the access verdict of a call (nothing is written)
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { ApiObject, ObjectRef } from '../api/index.js';
import { RevisionCompactedError, type Store } from '../store/store.js';
import { errorMessage, httpStatusOf, MeshfedError } from '../util/errors.js';
import { eventLoopDelay, startEventLoopMonitor } from '../util/event-loop.js';
import { applyServerTimeouts, decodePathSegments, parseJsonObject, readBody, sendJson } from '../util/http-body.js';
import { logger } from '../util/log.js';
import { collectGarbage, memoryMB } from '../util/memory.js';
import type { AgentSessions } from './agent-sessions.js';
import { explainAnswer, planAnswer } from './api-dry-run.js';
import { globalServicesAnswer, withStatus } from './api-status.js';
import { joinToken, rotateRoot, trustStatusAnswer, type TrustApiContext } from './api-trust.js';
import { FederatedViewCache } from './federated-view.js';
import { applyObjects, deleteObjects } from './objects.js';
import type { HubTrust } from './trust.js';
import { findKind, parseAndValidateSliced } from '../registry.js';

const log = logger('hub.api');
/** A watch stream's unsent bytes at most: a watcher that does not read is dropped past it (as the Kubernetes API server drops slow watchers). */
// 256 KiB: 100 stalled watchers hold at most ~25 MB (beside what the kernel buffers per socket).
export const WATCH_BUFFER_BYTES = 256 * 1024;

interface ApiContext extends TrustApiContext {
  views: FederatedViewCache;
}

export function createHubHttpServer(store: Store, sessions: AgentSessions, trust: HubTrust, secure: boolean): Server {
  const ctx: ApiContext = { store, sessions, trust, secure, views: new FederatedViewCache(store) };
  startEventLoopMonitor();
  const server = createServer((req, res) => {
    handle(ctx, req, res).catch((err: unknown) => sendError(res, err));
  });
  return applyServerTimeouts(server);
}

async function handle(ctx: ApiContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const { store, sessions, trust } = ctx;
  const url = new URL(req.url ?? '/', 'http://hub');
  const parts = decodePathSegments(url.pathname);
  if (url.pathname === '/healthz') return sendJson(res, 200, { ok: true, revision: store.revision() });
  if (parts[0] !== 'api' || parts[1] !== 'v1alpha1') throw new MeshfedError('not-found', `no route for ${url.pathname}`);
  const [, , resource, name] = parts;
  if (!resource) throw new MeshfedError('not-found', 'resource missing in path');
  const q = url.searchParams;

  if (resource === 'apply' && req.method === 'POST') {
    const objects = await objectsFromBody(req, q.get('source') ?? 'request');
    const results = await applyObjects(store, objects);
    log.info('apply', { results: results.map((r) => `${r.object} ${r.outcome}`) });
    return sendJson(res, 200, { results, revision: store.revision() });
  }
  if (resource === 'globalservices' && req.method === 'GET') return sendJson(res, 200, await globalServicesAnswer(store, ctx.views));
  if (resource === 'plan' && req.method === 'POST') return sendJson(res, 200, await planAnswer(store, await objectsFromBody(req, q.get('source') ?? 'request', MAX_PLAN_OBJECTS)));
  if (resource === 'explain' && req.method === 'POST') return sendJson(res, 200, await explainAnswer(store, await readBody(req)));
  if (resource === 'agents' && req.method === 'GET') return sendJson(res, 200, { items: sessions.list() });
  if (resource === 'clusters' && name && parts[4] === 'join-token' && req.method === 'POST') {
    return sendJson(res, 200, await joinToken(ctx, name, parseJsonObject(await readBody(req))));
  }
  if (resource === 'trust' && !name && req.method === 'GET') return sendJson(res, 200, await trustStatusAnswer(ctx));
  if (resource === 'trust' && name === 'rotate-root' && req.method === 'POST') return sendJson(res, 200, await rotateRoot(ctx, parseJsonObject(await readBody(req))));
  if (resource === 'hub' && req.method === 'GET') {
    return sendJson(res, 200, { revision: store.revision(), memory: memoryMB(), eventLoop: eventLoopDelay(q.get('resetEventLoop') === '1'), views: sessions.viewStats() });
  }
  if (resource === 'hub' && name === 'gc' && req.method === 'POST') {
    // Only with node --expose-gc (benchmarks); a no-op otherwise.
    return sendJson(res, 200, { collected: collectGarbage(), memory: memoryMB() });
  }
  if (resource === 'proxies' && req.method === 'GET') {
    return sendJson(res, 200, { revision: store.revision(), clusters: sessions.proxies() });
  }

  const def = findKind(resource);
  if (!def) throw new MeshfedError('not-found', `unknown resource "${resource}"`, { reason: 'UnknownKind' });
  const ref = (n: string): ObjectRef => {
    const r: ObjectRef = { kind: def.kind, name: n };
    const ns = q.get('namespace');
    const cl = q.get('cluster');
    if (def.namespaced) {
      if (!ns) throw new MeshfedError('invalid', `${def.kind} is namespaced: pass ?namespace=`);
      r.namespace = ns;
    }
    if (def.discovered) {
      if (!cl) throw new MeshfedError('invalid', `${def.kind} belongs to a cluster: pass ?cluster=`);
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
    return sendJson(res, 200, { items: await withStatus(store, ctx.views, def.kind, items), revision: store.revision() });
  }
  if (req.method === 'GET' && name) {
    const obj = await store.get(ref(name));
    if (!obj) throw new MeshfedError('not-found', `${def.kind} "${name}" not found`);
    return sendJson(res, 200, (await withStatus(store, ctx.views, def.kind, [obj]))[0]);
  }
  if (req.method === 'DELETE' && name) {
    const r = ref(name);
    const results = await deleteObjects(store, [r]);
    if (results[0]?.outcome === 'not-found') throw new MeshfedError('not-found', `${def.kind} "${name}" not found`);
    if (def.kind === 'Cluster' && results[0]?.outcome === 'deleted') {
      // Revoked (persisted) before the answer: a reconnect with the old certificate is refused.
      await trust.revokeCluster(name, `cluster "${name}" was deleted at the hub`);
      sessions.disconnect(name, `cluster "${name}" was deleted at the hub`);
    }
    log.info('delete', { results: results.map((x) => `${x.object} ${x.outcome}`) });
    return sendJson(res, 200, { results, revision: store.revision() });
  }
  // A routing answer, not an error kind of its own: the error codes have no 405.
  return sendJson(res, 405, { error: `${req.method} is not supported on ${url.pathname}`, reason: 'MethodNotAllowed' });
}

/**
 * A watch stream: NDJSON events of one kind from `revision` (default: now).
 * Bounded: when the client does not read and the unsent bytes pass
 * WATCH_BUFFER_BYTES, the watch ends with a final ERROR line naming the reason
 * (the client re-lists and watches again) and its connection is freed.
 */
function watch(store: Store, kind: string, q: URLSearchParams, req: IncomingMessage, res: ServerResponse): void {
  const from = watchRevision(q.get('revision'), store.revision());
  let stop: (() => void) | undefined;
  let dropped = false;
  const drop = (): void => {
    dropped = true;
    stop?.();
    log.warn('slow watcher dropped', { kind, unsentBytes: res.writableLength, limit: WATCH_BUFFER_BYTES });
    res.end(JSON.stringify({ type: 'ERROR', reason: 'SlowWatcher', message: `the client read too slowly: more than ${WATCH_BUFFER_BYTES} bytes were unsent; list and watch again` }) + '\n');
    // A client that does not read never takes the final line: free its buffers.
    setTimeout(() => res.destroy(), 1000).unref();
  };
  try {
    stop = store.watch(from, (e) => {
      if (dropped || e.object.kind !== kind) return;
      res.write(JSON.stringify(e) + '\n');
      if (res.writableLength > WATCH_BUFFER_BYTES) drop();
    });
  } catch (err) {
    if (err instanceof RevisionCompactedError) throw new MeshfedError('gone', err.message);
    throw err;
  }
  res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-cache' });
  res.write(JSON.stringify({ type: 'BOOKMARK', revision: store.revision() }) + '\n');
  req.on('close', () => stop?.());
}

/** ?revision=: a non-negative integer, or a 400 naming it. */
function watchRevision(raw: string | null, current: number): number {
  if (raw === null || raw === '') return current;
  const n = Number(raw);
  if (!/^[0-9]+$/.test(raw) || !Number.isSafeInteger(n)) throw new MeshfedError('invalid', `revision: "${raw.slice(0, 40)}" is not a non-negative integer`);
  return n;
}

// --- bodies

/** Objects in a plan at most: a dry run computes every cluster's xDS before and after, far heavier than an apply. */
export const MAX_PLAN_OBJECTS = 200;

/** Objects in a request body (YAML or JSON, validated all or nothing), or a 400 naming what is wrong. */
async function objectsFromBody(req: IncomingMessage, source: string, max?: number): Promise<ApiObject[]> {
  // An InvalidInputError is a MeshfedError (400, the problems as details); the parser bounds documents, objects and depth.
  const objects = await parseAndValidateSliced(await readBody(req), source);
  if (objects.length === 0) throw new MeshfedError('invalid', 'no objects in the request');
  if (max !== undefined && objects.length > max) throw new MeshfedError('invalid', `${objects.length} objects: a plan takes at most ${max}; split it`, { reason: 'TooManyObjects' });
  return objects;
}

// --- answers

/** Every error of a request, answered once. */
function sendError(res: ServerResponse, err: unknown): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (err instanceof MeshfedError) return sendJson(res, err.httpStatus, { error: err.message, reason: err.reason, details: err.details });
  log.error('request failed', { error: err instanceof Error ? err.stack : String(err) });
  sendJson(res, httpStatusOf(err), { error: `internal error: ${errorMessage(err)}`, reason: 'Internal' });
}
