// The hub's HTTP API router, used by the CLI (and later the UI): it parses the
// URL and method, checks the request (cross-site checks, then a credential:
// api-security.ts, src/auth), asks the Authorizer ONE Permission per route
// (one per object for apply, plan and delete), audits every write and every
// denial (awaited before the answer), reads bounded bodies, dispatches to the
// handlers (api-status.ts, api-dry-run.ts, api-trust.ts, api-auth.ts,
// objects.ts) and writes JSON answers. Errors are answered in one place: a
// MeshfedError with its HTTP status and the body {error, reason, details};
// anything else is a 500 {error: "internal error: ...", reason: "Internal"}.
// Only GET /healthz and /readyz are open; everything else answers 401 without a valid
// credential (one uniform message) and 403 naming the permission missing.
//   GET    /healthz                                          (no credential) {ok, revision, version}: liveness
//   GET    /readyz                                           (no credential) 200 {ready: true}, or 503 {ready: false, reason}: readiness
//   GET    /api/v1alpha1/{plural}[?namespace=&cluster=&labelSelector=]      list (labelSelector: kubectl's syntax, src/api/selector.ts)
//   GET    /api/v1alpha1/{plural}?watch=1[&revision=N&namespace=&cluster=&labelSelector=]   watch (newline-delimited JSON events, filtered as the list; a watcher that does not read is dropped, see watch())
//   GET    /api/v1alpha1/{plural}/{name}[?namespace=&cluster=]
//   POST   /api/v1alpha1/apply[?strict=true]   body: YAML or JSON (one or many objects); all or nothing; answers {results, warnings, revision} (warnings also as Warning: 299 headers); strict: any warning refuses the whole apply (400, reason Warnings), nothing written
//   DELETE /api/v1alpha1/{plural}/{name}[?namespace=]
//   GET    /api/v1alpha1/globalservices   the federated view (read-only, computed)
//   GET    /api/v1alpha1/agents           connected agent sessions
//   GET    /api/v1alpha1/hub[?resetEventLoop=1]   the hub process: revision, memory, event-loop delay, view fan-out (scopes, cached full views, logs), the Kubernetes source of policies
//   GET    /api/v1alpha1/hub/replicas  the hub replicas on the shared store, each with its role (leader|standby); {self, leader, items}
//   POST   /api/v1alpha1/hub/gc           full GC when started with node --expose-gc (benchmarks), else nothing
//   GET    /api/v1alpha1/proxies          the data planes each agent last reported
//   POST   /api/v1alpha1/plan             body: objects to apply; a dry run (nothing is written): per-cluster xDS diff, traffic split before/after
//   POST   /api/v1alpha1/clusters/{name}/join-token   body {ttl?, spec?}: creates the Cluster if absent (with spec), answers a one-time join token
//   GET    /api/v1alpha1/trust            roots, rotation phase, what each cluster was issued, warnings
//   POST   /api/v1alpha1/trust/rotate-root   body {step: add|activate|retire, force?}
//   POST   /api/v1alpha1/explain          body: {from, to, method?, with?}: route, endpoints and the access verdict of a call (nothing is written)
//   POST   /api/v1alpha1/auth/tokens      body {user, groups?, scope?, ttl?}: a bearer token (its secret once)
//   GET    /api/v1alpha1/auth/tokens      tokens (no secrets)
//   DELETE /api/v1alpha1/auth/tokens/{id} revoke
//   POST   /api/v1alpha1/auth/certificates   body {user, groups?, ttl?, csr}: a user client certificate {certificate, serial, expiresAt}
//   GET    /api/v1alpha1/auth/certificates   issued user certificates (serial, user, groups, state)
//   DELETE /api/v1alpha1/auth/certificates/{serial}   revoke
//   GET    /api/v1alpha1/auth/whoami      the caller's principal and the mesh trust domain (any authenticated caller)
//   GET    /api/v1alpha1/audit[?since=&until=&who=&kind=&namespace=&object=&outcome=&limit=]   audit records, newest first
//   GET    /api/v1alpha1/audit/verify     walks the hash chain; the first broken link by seq
//   POST   /api/v1alpha1/auth/can-i       body {verb, kind, name?, namespace?, cluster?, actions?} or {list: true}: what the caller may do
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { clusterOf, type ApiObject, type ObjectRef } from '../api/index.js';
import type { Authenticator, FailureLimiter } from '../auth/authn.js';
import { UNAUTHENTICATED_MESSAGE } from '../auth/authn.js';
import { describePermission, SUPERUSER_GROUP, type Authorizer } from '../auth/authorizer.js';
import { permissionFor, permissionsFor } from '../auth/permissions.js';
import type { RbacAuthorizer } from '../auth/rbac-authorizer.js';
import type { Write } from '../auth/rbac-writes.js';
import { canIAnswer } from './api-auth.js';
import { scopeAllows, type CredentialStore } from '../auth/credentials.js';
import type { AuditRecord, AuditSink, Permission, Principal } from '../auth/types.js';
import { auditRecordOf, type AuditInput } from '../audit/record.js';
import type { AuditLog } from '../audit/log.js';
import { auditAnswer, verifyAnswer } from './api-audit.js';
import { RevisionCompactedError, type Store } from '../store/store.js';
import { errorMessage, httpStatusOf, MeshfedError } from '../util/errors.js';
import { logger } from '../util/log.js';
import { collectGarbage, memoryMB } from '../util/memory.js';
import type { AgentSessions } from './agent-sessions.js';
import { createCertificateAnswer, listCertificatesAnswer, revokeCertificateAnswer } from './api-certificates.js';
import { createTokenAnswer, listTokensAnswer, revokeTokenAnswer } from './api-tokens.js';
import { applyWarningsAnswer, explainAnswer, planAnswer } from './api-dry-run.js';
import { checkCrossSite, type ApiTlsMaterial } from './api-security.js';
import { globalServicesAnswer, withStatus } from './api-status.js';
import { joinToken, rotateRoot, trustStatusAnswer, type TrustApiContext } from './api-trust.js';
import { FederatedViewCache } from './federated-view.js';
import { applyObjects, deleteObjects } from './objects.js';
import { selectionOf, selects, watchFilter, type Selection } from './api-select.js';
import type { HubTrust } from './trust.js';
import { findKind, parseAndValidateSliced } from '../registry.js';
import { eventLoopDelay, startEventLoopMonitor } from '../util/event-loop.js';
import { applyServerTimeouts, decodePathSegments, oneLine, parseJsonObject, readBody, sendJson } from '../util/http-body.js';
import { meshfedVersion } from '../util/version.js';

const log = logger('hub.api');
/** A watch stream's unsent bytes at most: a watcher that does not read is dropped past it (as the Kubernetes API server drops slow watchers). */
// 256 KiB: 100 stalled watchers hold at most ~25 MB (beside what the kernel buffers per socket).
export const WATCH_BUFFER_BYTES = 256 * 1024;

/** What the router needs to check a request: who (authenticator), may they (authorizer), the record (audit). */
export interface ApiSecurity {
  authenticator: Authenticator;
  authorizer: Authorizer;
  /** The RBAC authorizer behind `authorizer`, for whole write requests (updates against stored objects, escalation). */
  rbac: RbacAuthorizer;
  audit: AuditSink;
  /** The audit log to query (GET audit, audit/verify). */
  auditLog: AuditLog;
  credentials: CredentialStore;
  limiter: FailureLimiter;
  /** Host names the API answers to (Host and Origin checks). */
  hosts: Set<string>;
  /** TLS material; undefined with --insecure-api (plain HTTP). */
  tls?: ApiTlsMaterial;
  /** The Kubernetes source of policies, when the hub reads them (its status is part of GET hub). */
  kubernetesPolicies?: { status(): unknown };
  /** The hub replicas sharing the store and which leads (GET hub/replicas). */
  replicas?: () => Promise<unknown>;
}

interface ApiContext extends TrustApiContext, ApiSecurity {
  views: FederatedViewCache;
  /** The listening port, once known (Origin checks). */
  port: number;
  /** Why the hub does not serve yet (starting: the agent channel is not bound) or any more (stopping); undefined when it does. */
  notReady: string | undefined;
}

/** One authenticated request on its way through the router. */
interface Call {
  ctx: ApiContext;
  req: IncomingMessage;
  res: ServerResponse;
  principal: Principal;
  from: string;
  request: string;
}

export interface HubHttpServer {
  server: Server;
  /** Tell the router its port once listening (Origin checks). */
  setPort(port: number): void;
  /** Why /readyz answers 503 (undefined: ready, as long as the store takes writes). */
  setNotReady(reason: string | undefined): void;
}

export function createHubHttpServer(store: Store, sessions: AgentSessions, trust: HubTrust, secure: boolean, security: ApiSecurity): HubHttpServer {
  const ctx: ApiContext = { store, sessions, trust, secure, views: new FederatedViewCache(store), port: 0, notReady: 'starting', ...security };
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    handle(ctx, req, res).catch((err: unknown) => sendError(res, err));
  };
  startEventLoopMonitor();
  const server: Server = applyServerTimeouts(
    // A client certificate is requested, not required: TLS verifies one against `ca` (the mesh's trust bundle) and
    // the CertificateAuthenticator honours it only when verified; without one, the bearer token decides.
    security.tls
      ? (createHttpsServer(
          { cert: security.tls.cert, key: security.tls.key, ca: security.tls.clientCaPem ?? security.tls.caPem, requestCert: true, rejectUnauthorized: false },
          handler,
        ) as unknown as Server)
      : createServer(handler),
  );
  return { server, setPort: (port) => (ctx.port = port), setNotReady: (reason) => (ctx.notReady = reason) };
}

async function handle(ctx: ApiContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://hub');
  if (url.pathname === '/healthz' && req.method === 'GET') return sendJson(res, 200, { ok: true, revision: ctx.store.revision(), version: meshfedVersion() });
  if (url.pathname === '/readyz' && req.method === 'GET') {
    const reason = ctx.notReady ?? ctx.store.unavailable();
    return sendJson(res, reason === undefined ? 200 : 503, reason === undefined ? { ready: true } : { ready: false, reason: oneLine(reason) });
  }
  const address = req.socket.remoteAddress ?? '';
  const from = `${address}:${req.socket.remotePort ?? 0}`;
  const request = `${req.method} ${url.pathname}`;
  const refuse = async (err: MeshfedError, who: Principal | undefined, perm?: Permission): Promise<never> => {
    await ctx.audit.record(auditRecord(who, from, request, perm, 'denied', err.message));
    throw err;
  };
  try {
    checkCrossSite(req, ctx.hosts, ctx.port, ctx.tls ? 'https' : 'http');
  } catch (err) {
    if (err instanceof MeshfedError) await refuse(err, undefined);
    throw err;
  }
  const principal = await ctx.authenticator.authenticate(req);
  if (!principal) {
    // Past the limit of failed authentications from this address, failures answer 429 (and are not logged one by
    // one): the limit stops floods of guesses, while a request with a valid credential from the same address
    // (a shared NAT, a colleague) still gets in.
    const waitMs = ctx.limiter.retryAfterMs(address);
    if (waitMs > 0) {
      res.setHeader('retry-after', String(Math.ceil(waitMs / 1000)));
      await refuse(new MeshfedError('rate-limited', `too many failed authentications from ${address}: retry in ${Math.ceil(waitMs / 1000)} s`), undefined);
    }
    // Only a credential that was presented and failed counts: no credential at all is not a guess.
    if (req.headers.authorization !== undefined) ctx.limiter.fail(address);
    await refuse(new MeshfedError('unauthenticated', UNAUTHENTICATED_MESSAGE), undefined);
  }
  return route({ ctx, req, res, principal: principal!, from, request }, url);
}

/** Asks the authorizer (and the token's scope) for one permission; a denial is audited and answered 403 naming it. */
async function allow(call: Call, perm: Permission): Promise<void> {
  const p = call.principal;
  let reason: string | undefined;
  if (!scopeAllows(p.scope, perm.verb, perm.kind)) reason = `token ${p.credentialId} is scoped to ${p.scope!.join(', ')}`;
  else {
    const d = await call.ctx.authorizer.authorize(p, perm);
    if (!d.allowed) reason = d.reason;
  }
  if (reason === undefined) return;
  const err = new MeshfedError('forbidden', `forbidden: ${p.kind}:${p.name} may not ${describePermission(perm)}: ${reason}`, {
    details: { permission: { verb: perm.verb, kind: perm.kind, namespace: perm.namespace, cluster: perm.cluster, name: perm.name } },
  });
  await call.ctx.audit.record(auditRecord(p, call.from, call.request, perm, 'denied', reason));
  throw err;
}

/** What one audited write records: its permission and the object before and after it, or the (redacted) body of an operation. */
interface AuditEntry {
  perm: Permission;
  before?: ApiObject | undefined;
  after?: ApiObject | undefined;
  body?: unknown;
}

/** Runs a write and audits it (allowed, with each object's diff, or failed with why) before the answer. */
async function audited<T>(call: Call, entries: readonly (Permission | AuditEntry)[], write: () => Promise<T>, revision?: () => number): Promise<T> {
  const list = entries.map((e): AuditEntry => ('perm' in e ? e : { perm: e }));
  const record = (e: AuditEntry, outcome: AuditRecord['outcome'], reason?: string, rev?: number) => {
    const input: AuditInput = { principal: call.principal, from: call.from, method: call.req.method ?? '', url: call.req.url ?? '', permission: e.perm, outcome };
    if (reason !== undefined) input.reason = reason;
    if (rev !== undefined) input.revision = rev;
    if (e.before) input.before = e.before;
    if (e.after) input.after = e.after;
    if (e.body !== undefined) input.body = e.body;
    return call.ctx.audit.record(auditRecordOf(input));
  };
  try {
    const out = await write();
    for (const e of list) await record(e, 'allowed', undefined, revision?.());
    return out;
  } catch (err) {
    // The answer names what failed: the write's error, not the audit store's when it failed too. A store that
    // is down (etcd without quorum) fails the write at its deadline; the record of that failure is written
    // when it can be, not waited for a second deadline: nothing was written that it would account for.
    const failure = (async () => {
      for (const e of list) await record(e, 'failed', errorMessage(err));
    })().catch((auditErr: unknown) => log.warn('a failed write could not be audited', { request: call.request, error: errorMessage(err), audit: errorMessage(auditErr) }));
    if (!(err instanceof MeshfedError && err.code === 'unavailable')) await failure;
    throw err;
  }
}

/** The record of a refused request (no body or diff: nothing was written). */
function auditRecord(who: Principal | undefined, from: string, request: string, perm: Permission | undefined, outcome: AuditRecord['outcome'], reason?: string): AuditRecord {
  const [method = '', url = ''] = request.split(' ', 2);
  const input: AuditInput = { from, method, url, permission: perm ?? { verb: '', kind: '' }, outcome };
  if (who) input.principal = who;
  if (reason !== undefined) input.reason = reason;
  return auditRecordOf(input);
}

/** The writes of an apply: create when absent, update (with the stored object it replaces) when present. */
async function objectWrites(store: Store, objects: readonly ApiObject[]): Promise<Write[]> {
  const writes: Write[] = [];
  for (const o of objects) {
    const ref: ObjectRef = { kind: o.kind, name: o.metadata.name };
    if (o.metadata.namespace) ref.namespace = o.metadata.namespace;
    const cluster = clusterOf(o);
    if (cluster) ref.cluster = cluster;
    const previous = await store.get(ref);
    writes.push(previous ? { verb: 'update', object: o, previous } : { verb: 'create', object: o });
  }
  return writes;
}

/**
 * A whole write request past the per-permission checks: for principals outside
 * the superuser group, updates are also checked against the stored objects and
 * Roles/RoleBindings for escalation (nobody grants more than they hold).
 */
async function allowWrites(call: Call, writes: readonly Write[]): Promise<void> {
  const p = call.principal;
  if (p.groups.includes(SUPERUSER_GROUP)) return;
  const d = call.ctx.rbac.authorizeWrites(p, writes);
  if (d.allowed) return;
  const perm = d.denied ?? { verb: 'write', kind: '' };
  await call.ctx.audit.record(auditRecord(p, call.from, call.request, perm, 'denied', d.reason));
  throw new MeshfedError('forbidden', `forbidden: ${d.reason}`, { details: { permission: { verb: perm.verb, kind: perm.kind, namespace: perm.namespace, cluster: perm.cluster, name: perm.name } } });
}

async function route(call: Call, url: URL): Promise<void> {
  const { ctx, req, res } = call;
  const { store, sessions, trust } = ctx;
  const parts = decodePathSegments(url.pathname);
  if (parts[0] !== 'api' || parts[1] !== 'v1alpha1') throw new MeshfedError('not-found', `no route for ${url.pathname}`);
  const [, , resource, name] = parts;
  if (!resource) throw new MeshfedError('not-found', 'resource missing in path');
  const q = url.searchParams;
  const revision = () => store.revision();

  if (resource === 'apply' && req.method === 'POST') {
    const objects = await objectsFromBody(req, q.get('source') ?? 'request');
    const writes = await objectWrites(store, objects);
    const perms = writes.flatMap((w) => permissionsFor(w.verb, w.object, w.previous));
    for (const perm of perms) await allow(call, perm);
    await allowWrites(call, writes);
    // Checked before the commit: a strict apply with warnings writes nothing.
    const warnings = await applyWarningsAnswer(store, ctx.views, objects, sessions.proxies());
    if (warnings.length > 0 && strictFlag(q.get('strict'))) {
      throw new MeshfedError('invalid', `refused (strict): ${warnings.length} warning(s), nothing was applied:\n${warnings.map((w) => `  Warning: ${w}`).join('\n')}`, {
        reason: 'Warnings',
        details: { warnings },
      });
    }
    const entries = writes.map((w) => ({ perm: permissionFor(w.verb, w.object), before: w.previous, after: w.object }));
    const results = await audited(call, entries, () => applyObjects(store, objects), revision);
    log.info('apply', { results: results.map((r) => `${r.object} ${r.outcome}`), by: call.principal.name, warnings: warnings.length });
    setWarningHeaders(res, warnings);
    return sendJson(res, 200, { results, warnings, revision: store.revision() });
  }
  if (resource === 'globalservices' && req.method === 'GET') {
    await allow(call, { verb: 'read', kind: 'GlobalService' });
    return sendJson(res, 200, await globalServicesAnswer(store, ctx.views));
  }
  if (resource === 'plan' && req.method === 'POST') {
    const objects = await objectsFromBody(req, q.get('source') ?? 'request', MAX_PLAN_OBJECTS);
    for (const o of objects) await allow(call, permissionFor('plan', o));
    return sendJson(res, 200, await planAnswer(store, objects, sessions.proxies()));
  }
  if (resource === 'explain' && req.method === 'POST') {
    await allow(call, { verb: 'explain', kind: 'Service' });
    return sendJson(res, 200, await explainAnswer(store, await readBody(req)));
  }
  if (resource === 'agents' && req.method === 'GET') {
    await allow(call, { verb: 'read', kind: 'Agent' });
    return sendJson(res, 200, { items: sessions.list() });
  }
  if (resource === 'clusters' && name && parts[4] === 'join-token' && req.method === 'POST') {
    const perm: Permission = { verb: 'mint-join-token', kind: 'Cluster', name };
    await allow(call, perm);
    const body = parseJsonObject(await readBody(req));
    return sendJson(res, 200, await audited(call, [{ perm, body }], () => joinToken(ctx, name, body), revision));
  }
  if (resource === 'trust' && !name && req.method === 'GET') {
    await allow(call, { verb: 'read', kind: 'Trust' });
    return sendJson(res, 200, await trustStatusAnswer(ctx));
  }
  if (resource === 'trust' && name === 'rotate-root' && req.method === 'POST') {
    const perm: Permission = { verb: 'rotate-root', kind: 'Trust' };
    await allow(call, perm);
    const body = parseJsonObject(await readBody(req));
    return sendJson(res, 200, await audited(call, [{ perm, body }], () => rotateRoot(ctx, body)));
  }
  if (resource === 'hub' && !name && req.method === 'GET') {
    await allow(call, { verb: 'read', kind: 'Hub' });
    return sendJson(res, 200, {
      revision: store.revision(),
      memory: memoryMB(),
      eventLoop: eventLoopDelay(q.get('resetEventLoop') === '1'),
      views: sessions.viewStats(),
      ...(ctx.kubernetesPolicies ? { kubernetesPolicies: ctx.kubernetesPolicies.status() } : {}),
    });
  }
  if (resource === 'hub' && name === 'replicas' && req.method === 'GET') {
    await allow(call, { verb: 'read', kind: 'Hub' });
    return sendJson(res, 200, (await ctx.replicas?.()) ?? { items: [] });
  }
  if (resource === 'hub' && name === 'gc' && req.method === 'POST') {
    const perm: Permission = { verb: 'gc', kind: 'Hub' };
    await allow(call, perm);
    // Only with node --expose-gc (benchmarks); a no-op otherwise.
    return sendJson(res, 200, await audited(call, [perm], () => Promise.resolve({ collected: collectGarbage(), memory: memoryMB() })));
  }
  if (resource === 'proxies' && req.method === 'GET') {
    await allow(call, { verb: 'read', kind: 'Proxy' });
    return sendJson(res, 200, { revision: store.revision(), clusters: sessions.proxies() });
  }
  if (resource === 'audit' && !name && req.method === 'GET') {
    await allow(call, { verb: 'read', kind: 'Audit' });
    return sendJson(res, 200, auditAnswer(ctx.auditLog, q));
  }
  if (resource === 'audit' && name === 'verify' && req.method === 'GET') {
    await allow(call, { verb: 'read', kind: 'Audit' });
    return sendJson(res, 200, await verifyAnswer(ctx.auditLog));
  }
  if (resource === 'auth' && name === 'tokens') return tokensRoute(call, parts[4]);
  if (resource === 'auth' && name === 'certificates') return certificatesRoute(call, parts[4]);
  // Any authenticated principal may ask who it is (the credential id, never a secret), and the mesh's trust
  // domain its certificate requests must name (auth cert create needs it without the right to read Trust).
  if (resource === 'auth' && name === 'whoami' && req.method === 'GET') return sendJson(res, 200, { ...call.principal, trustDomain: trust.trustDomain() });
  // Any authenticated principal may ask what it itself may do.
  if (resource === 'auth' && name === 'can-i' && req.method === 'POST') return sendJson(res, 200, await canIAnswer(store, call.principal, parseJsonObject(await readBody(req))));

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
  const readPerm = (n?: string): Permission => {
    const perm: Permission = { verb: 'read', kind: def.kind };
    if (q.get('namespace') && def.namespaced) perm.namespace = q.get('namespace')!;
    if (q.get('cluster')) perm.cluster = q.get('cluster')!;
    if (n) perm.name = n;
    return perm;
  };

  if (req.method === 'GET' && !name && q.get('watch')) {
    await allow(call, readPerm());
    return watch(store, selectionOf(def, q), q, req, res);
  }
  if (req.method === 'GET' && !name) {
    await allow(call, readPerm());
    const sel = selectionOf(def, q);
    const items = (await store.list(sel.filter)).filter((o) => selects(sel, o));
    return sendJson(res, 200, { items: await withStatus(store, ctx.views, def.kind, items), revision: store.revision() });
  }
  if (req.method === 'GET' && name) {
    await allow(call, readPerm(name));
    const obj = await store.get(ref(name));
    if (!obj) throw new MeshfedError('not-found', `${def.kind} "${name}" not found`);
    return sendJson(res, 200, (await withStatus(store, ctx.views, def.kind, [obj]))[0]);
  }
  if (req.method === 'DELETE' && name) {
    const r = ref(name);
    // The stored object (when there is one) is what a delete asks for: its namespace, cluster and actions.
    const stored = await store.get(r);
    const perm: Permission = stored ? permissionFor('delete', stored) : { verb: 'delete', kind: def.kind, name };
    if (!stored && r.namespace) perm.namespace = r.namespace;
    if (!stored && r.cluster) perm.cluster = r.cluster;
    await allow(call, perm);
    const results = await audited(
      call,
      [{ perm, before: stored }],
      async () => {
        const out = await deleteObjects(store, [r]);
        if (out[0]?.outcome === 'not-found') throw new MeshfedError('not-found', `${def.kind} "${name}" not found`);
        if (def.kind === 'Cluster' && out[0]?.outcome === 'deleted') {
          // Revoked (persisted) before the answer: a reconnect with the old certificate is refused.
          await trust.revokeCluster(name, `cluster "${name}" was deleted at the hub`);
          sessions.disconnect(name, `cluster "${name}" was deleted at the hub`);
        }
        return out;
      },
      revision,
    );
    log.info('delete', { results: results.map((x) => `${x.object} ${x.outcome}`), by: call.principal.name });
    return sendJson(res, 200, { results, revision: store.revision() });
  }
  return methodNotAllowed(req, res, url);
}

/** POST/GET auth/tokens, DELETE auth/tokens/{id}. */
async function tokensRoute(call: Call, id: string | undefined): Promise<void> {
  const { ctx, req, res } = call;
  if (!id && req.method === 'POST') {
    const body = parseJsonObject(await readBody(req));
    const perm: Permission = { verb: 'create', kind: 'Token', name: typeof body.user === 'string' ? body.user : '' };
    await allow(call, perm);
    return sendJson(res, 201, await audited(call, [{ perm, body }], () => createTokenAnswer(ctx.credentials, call.principal, body)));
  }
  if (!id && req.method === 'GET') {
    await allow(call, { verb: 'read', kind: 'Token' });
    return sendJson(res, 200, listTokensAnswer(ctx.credentials));
  }
  if (id && req.method === 'DELETE') {
    const perm: Permission = { verb: 'delete', kind: 'Token', name: id };
    await allow(call, perm);
    return sendJson(res, 200, await audited(call, [perm], () => revokeTokenAnswer(ctx.credentials, call.principal, id)));
  }
  return methodNotAllowed(req, res, new URL(req.url ?? '/', 'http://hub'));
}

/** POST/GET auth/certificates, DELETE auth/certificates/{serial}. */
async function certificatesRoute(call: Call, serial: string | undefined): Promise<void> {
  const { ctx, req, res } = call;
  if (!serial && req.method === 'POST') {
    const body = parseJsonObject(await readBody(req));
    const perm: Permission = { verb: 'create', kind: 'Certificate', name: typeof body.user === 'string' ? body.user : '' };
    await allow(call, perm);
    return sendJson(res, 201, await audited(call, [{ perm, body }], () => createCertificateAnswer(ctx.credentials, ctx.trust, call.principal, body)));
  }
  if (!serial && req.method === 'GET') {
    await allow(call, { verb: 'read', kind: 'Certificate' });
    return sendJson(res, 200, listCertificatesAnswer(ctx.credentials));
  }
  if (serial && req.method === 'DELETE') {
    const perm: Permission = { verb: 'delete', kind: 'Certificate', name: serial };
    await allow(call, perm);
    return sendJson(res, 200, await audited(call, [perm], () => revokeCertificateAnswer(ctx.credentials, call.principal, serial)));
  }
  return methodNotAllowed(req, res, new URL(req.url ?? '/', 'http://hub'));
}

function methodNotAllowed(req: IncomingMessage, res: ServerResponse, url: URL): void {
  // A routing answer, not an error kind of its own: the error codes have no 405.
  sendJson(res, 405, { error: `${req.method} is not supported on ${url.pathname}`, reason: 'MethodNotAllowed' });
}

/**
 * A watch stream: NDJSON events of one kind from `revision` (default: now).
 * Bounded: when the client does not read and the unsent bytes pass
 * WATCH_BUFFER_BYTES, the watch ends with a final ERROR line naming the reason
 * (the client re-lists and watches again) and its connection is freed.
 */
function watch(store: Store, sel: Selection, q: URLSearchParams, req: IncomingMessage, res: ServerResponse): void {
  const kind = sel.filter.kind;
  const from = watchRevision(q.get('revision'), store.revision());
  const seen = watchFilter(sel, store.scan(sel.filter).objects);
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
    stop = store.watch(from, (event) => {
      const e = dropped ? undefined : seen(event);
      if (!e) return;
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

/** ?strict=: true/1 or false/0 (absent: false), or a 400 naming it. */
function strictFlag(raw: string | null): boolean {
  if (raw === null || raw === '' || raw === 'false' || raw === '0') return false;
  if (raw === 'true' || raw === '1') return true;
  throw new MeshfedError('invalid', `strict: "${raw.slice(0, 40)}" is not true or false`);
}

// --- answers

/**
 * Warnings as Kubernetes sends admission warnings: one `Warning: 299 - "text"`
 * header each (RFC 7234), the text in printable ASCII with quotes and
 * backslashes escaped; the JSON body carries them in full.
 */
function setWarningHeaders(res: ServerResponse, warnings: readonly string[]): void {
  if (warnings.length === 0) return;
  res.setHeader(
    'Warning',
    warnings.slice(0, 20).map((w) => `299 - "${w.replace(/[^\x20-\x7e]/g, '?').replace(/["\\]/g, (c) => `\\${c}`)}"`),
  );
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
