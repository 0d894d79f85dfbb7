// The hub's HTTP API router, used by the CLI (and later the UI): it parses the
// URL and method, reads bounded bodies, dispatches to the handlers
// (api-status.ts, api-dry-run.ts, api-trust.ts, objects.ts) and writes JSON
// answers. Errors are answered in one place: a MeshfedError with its HTTP
// status and the body {error, reason, details}; anything else is a 500
// {error: "internal error: ...", reason: "Internal"}.
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
import { logger } from '../util/log.js';
import { collectGarbage, memoryMB } from '../util/memory.js';
import type { AgentSessions } from './agent-sessions.js';
import { explainAnswer, planAnswer } from './api-dry-run.js';
import { globalServicesAnswer, withStatus } from './api-status.js';
import { joinToken, rotateRoot, trustStatusAnswer, type TrustApiContext } from './api-trust.js';
import { FederatedViewCache } from './federated-view.js';
import { applyObjects, deleteObjects } from './objects.js';
import type { HubTrust } from './trust.js';
import { findKind, parseAndValidate } from '../registry.js';

const log = logger('hub.api');
const MAX_BODY = 8 * 1024 * 1024;

interface ApiContext extends TrustApiContext {
  views: FederatedViewCache;
}

export function createHubHttpServer(store: Store, sessions: AgentSessions, trust: HubTrust, secure: boolean): Server {
  const ctx: ApiContext = { store, sessions, trust, secure, views: new FederatedViewCache(store) };
  return createServer((req, res) => {
    handle(ctx, req, res).catch((err: unknown) => sendError(res, err));
  });
}

async function handle(ctx: ApiContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const { store, sessions, trust } = ctx;
  const url = new URL(req.url ?? '/', 'http://hub');
  const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
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
  if (resource === 'plan' && req.method === 'POST') return sendJson(res, 200, await planAnswer(store, await objectsFromBody(req, q.get('source') ?? 'request')));
  if (resource === 'explain' && req.method === 'POST') return sendJson(res, 200, await explainAnswer(store, await readBody(req)));
  if (resource === 'agents' && req.method === 'GET') return sendJson(res, 200, { items: sessions.list() });
  if (resource === 'clusters' && name && parts[4] === 'join-token' && req.method === 'POST') {
    return sendJson(res, 200, await joinToken(ctx, name, parseJsonBody(await readBody(req))));
  }
  if (resource === 'trust' && !name && req.method === 'GET') return sendJson(res, 200, await trustStatusAnswer(ctx));
  if (resource === 'trust' && name === 'rotate-root' && req.method === 'POST') return sendJson(res, 200, await rotateRoot(ctx, parseJsonBody(await readBody(req))));
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

function watch(store: Store, kind: string, q: URLSearchParams, req: IncomingMessage, res: ServerResponse): void {
  const from = Number(q.get('revision') ?? store.revision());
  let stop: (() => void) | undefined;
  try {
    stop = store.watch(from, (e) => {
      if (e.object.kind === kind) res.write(JSON.stringify(e) + '\n');
    });
  } catch (err) {
    if (err instanceof RevisionCompactedError) throw new MeshfedError('gone', err.message);
    throw err;
  }
  res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-cache' });
  res.write(JSON.stringify({ type: 'BOOKMARK', revision: store.revision() }) + '\n');
  req.on('close', () => stop?.());
}

// --- bodies

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new MeshfedError('too-large', `request body exceeds ${MAX_BODY} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** A JSON object body ({} when empty), or a 400. */
function parseJsonBody(text: string): Record<string, unknown> {
  if (!text.trim()) return {};
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new MeshfedError('invalid', `request body is not JSON: ${errorMessage(err)}`);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new MeshfedError('invalid', 'request body must be a JSON object');
  return v as Record<string, unknown>;
}

/** Objects in a request body (YAML or JSON, validated all or nothing), or a 400 naming what is wrong. */
async function objectsFromBody(req: IncomingMessage, source: string): Promise<ApiObject[]> {
  // An InvalidInputError is a MeshfedError (400, the problems as details).
  const objects = parseAndValidate(await readBody(req), source);
  if (objects.length === 0) throw new MeshfedError('invalid', 'no objects in the request');
  return objects;
}

// --- answers

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const data = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) });
  res.end(data);
}

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
