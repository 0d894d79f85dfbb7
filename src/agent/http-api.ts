// The agent's local HTTP API (loopback by default):
//   POST   /v1/workloads                 register (JSON Registration)
//   DELETE /v1/workloads?namespace=&name=  or  ?address=IP:PORT   deregister
//   GET    /v1/workloads                 registered workloads
//   GET    /v1/status                    readiness, hub connection, view revision
//   GET    /v1/services                  the federated view this agent serves
//   GET    /v1/proxies                   connected xDS clients and their sync state (per type SYNCED/STALE/NACKED)
//   GET    /v1/proxies/raw               the xDS server's full per-stream state
//   POST   /v1/gc                        full GC when started with node --expose-gc (benchmarks), else nothing
//   GET    /v1/bootstrap?namespace=&name=&zone=&server=1   gRPC xDS bootstrap JSON for a workload
//   GET    /v1/bootstrap?namespace=&name=&envoy=1[&delta=1] Envoy v3 bootstrap
//   (&certDir=DIR adds the file_watcher certificate provider for mTLS)
//   POST   /v1/identity/tokens           {namespace, serviceAccount, ttlSeconds?} -> a workload identity token (once)
//   GET    /v1/identity/tokens           tokens (ids, no secrets)
//   GET    /v1/identity/whoami           (Bearer token) the SPIFFE ID the token is bound to
//   POST   /v1/identity/certificates     (Bearer token) {csr} -> certificate chain and CA bundle
//   GET    /v1/identity/certificates     certificates issued (SPIFFE ID, serial, expiry)
//   GET    /v1/identity/bundle           (Bearer token) CA bundle and the current issuer
//
//   POST   /v1/auth/tokens               (admin) {namespace, serviceAccounts?, ttl?} -> a namespace token
//
// Every route but GET /healthz and /readyz needs a credential (an
// AgentAuthenticator: src/auth/authn-agent.ts): 401 without one, 403 when the
// caller may not do it for that namespace and service account. The identity
// routes marked (Bearer token) take the workload's identity token instead:
// that token IS their credential. Identity tokens expire (default 1h).
//
// Depends on the agent only through AgentApi (implemented by Agent), so this
// file does not import agent.ts. Errors are MeshfedErrors: their code gives the
// HTTP status; anything else is a 500. The body is always {error: message}.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Registration, RegistrationSource } from '../discovery/registration.js';
import type { FederatedView } from '../federation/types.js';
import { envoyBootstrap, grpcBootstrap, nodeIdFor } from '../xds/bootstrap.js';
import { formatHostPort, type HostPort } from '../util/address.js';
import { errorMessage, httpStatusOf, MeshfedError } from '../util/errors.js';
import { applyServerTimeouts, oneLine, readJsonObject, sendJson as json } from '../util/http-body.js';
import { collectGarbage } from '../util/memory.js';
import { agentAuthorize, type AgentAuthenticator, type AgentTokens } from '../auth/authn-agent.js';
import { UNAUTHENTICATED_MESSAGE } from '../auth/authn.js';
import type { Permission, Principal } from '../auth/types.js';
import { DURATION, durationMs } from '../api/duration.js';
import type { ProxySummary } from './proxy-status.js';
import type { WorkloadIdentity } from './workload-identity.js';

/** What the local API needs of the agent (Agent implements it). */
export interface AgentApi {
  readonly cluster: string;
  readonly registrations: Pick<RegistrationSource, 'list' | 'register' | 'deregister'>;
  /** Undefined while the agent is starting. */
  readonly identity: WorkloadIdentity | undefined;
  readonly xdsAddress: HostPort;
  readonly currentViewRevision: number;
  /** The agent's status (served as is); the API itself reads readiness and memory. */
  status(): { ready: boolean; notReadyReason?: string; memory: Record<string, number> };
  federatedView(): FederatedView;
  proxies(): ProxySummary[];
  /** The xDS server's full per-stream state. */
  rawProxies(): unknown;
  zones(): string[];
  locality(zone?: string): { region: string; zone: string; subZone: string };
}

/** Default lifetime of an identity token when the request gives none. */
const IDENTITY_TOKEN_TTL_S = 3600;

/** Routes a workload's identity token authenticates (not the API credential). */
const IDENTITY_TOKEN_ROUTES = new Set(['GET /v1/identity/whoami', 'POST /v1/identity/certificates', 'GET /v1/identity/bundle']);

export function createAgentHttpServer(agent: AgentApi, auth: AgentAuthenticator & Partial<Pick<AgentTokens, 'mintNamespaceToken'>>): Server {
  const server = createServer((req, res) => {
    handle(agent, auth, req, res).catch((err: unknown) => {
      json(res, httpStatusOf(err), { error: errorMessage(err), ...(err instanceof MeshfedError ? { reason: err.reason } : {}) });
    });
  });
  return applyServerTimeouts(server);
}

/** The caller may do this (else a 403 naming it). */
function allow(caller: Principal, perm: Permission): void {
  const d = agentAuthorize(caller, perm);
  if (!d.allowed) throw new MeshfedError('forbidden', `forbidden: ${d.reason}`);
}

async function handle(agent: AgentApi, auth: AgentAuthenticator & Partial<Pick<AgentTokens, 'mintNamespaceToken'>>, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://agent');
  const q = url.searchParams;
  const route = `${req.method} ${url.pathname}`;
  // Probes (no credential): /healthz is liveness (the process answers), /readyz is readiness (it serves its view:
  // from the hub, or the journaled one from disk), 503 with the reason until then.
  if (route === 'GET /healthz' || route === 'GET /readyz') {
    const s = agent.status();
    if (route === 'GET /healthz') return json(res, 200, { ok: true, ready: s.ready });
    return json(res, s.ready ? 200 : 503, s.ready ? { ready: true } : { ready: false, reason: oneLine(s.notReadyReason ?? 'not ready') });
  }
  let caller: Principal | undefined;
  if (!IDENTITY_TOKEN_ROUTES.has(route)) {
    caller = await auth.authenticate(req);
    if (!caller)
      throw new MeshfedError(
        'unauthenticated',
        UNAUTHENTICATED_MESSAGE.replace('meshfed auth token create, or the admin config the hub wrote at first start', "the agent's <data dir>/agent-admin.token, or a namespace token"),
      );
    const read = req.method === 'GET' && route !== 'GET /v1/identity/tokens' && route !== 'GET /v1/identity/certificates';
    if (read) allow(caller, { verb: 'read', kind: 'Agent' });
  }
  const who = caller!;
  switch (route) {
    case 'GET /v1/status':
      return json(res, 200, agent.status());
    case 'GET /v1/workloads':
      return json(res, 200, { items: agent.registrations.list() });
    case 'POST /v1/workloads': {
      // A JSON object (not null, not an array), or a 400 naming what it is.
      const body = (await readJsonObject(req)) as unknown as Registration;
      for (const f of ['namespace', 'service', 'address'] as const) {
        if (typeof body[f] !== 'string' || !body[f]) throw new MeshfedError('invalid', `${f}: required`);
      }
      allow(who, { verb: 'register', kind: 'Workload', namespace: body.namespace, name: body.name ?? body.address });
      const r = await agent.registrations.register(body);
      return json(res, r.outcome === 'created' ? 201 : 200, r);
    }
    case 'DELETE /v1/workloads': {
      const sel: { namespace?: string; name?: string; address?: string } = {};
      for (const k of ['namespace', 'name', 'address'] as const) if (q.get(k)) sel[k] = q.get(k)!;
      if (!sel.name && !sel.address) throw new MeshfedError('invalid', 'pass name (and namespace) or address');
      // Deregistering by address alone could remove another namespace's workload: that is the admin's.
      allow(who, { verb: 'deregister', kind: 'Workload', ...(sel.namespace && sel.name ? { namespace: sel.namespace } : {}), name: sel.name ?? sel.address! });
      const removed = await agent.registrations.deregister(sel);
      return json(res, 200, { removed });
    }
    case 'GET /v1/services':
      return json(res, 200, agent.federatedView());
    case 'GET /v1/proxies':
      return json(res, 200, { cluster: agent.cluster, viewRevision: agent.currentViewRevision, items: agent.proxies() });
    case 'POST /v1/gc':
      allow(who, { verb: 'gc', kind: 'Agent' });
      // Only with node --expose-gc (benchmarks); a no-op otherwise.
      return json(res, 200, { collected: collectGarbage(), memory: agent.status().memory });
    case 'GET /v1/proxies/raw':
      return json(res, 200, { cluster: agent.cluster, items: agent.rawProxies() });
    case 'GET /v1/bootstrap': {
      const ns = q.get('namespace');
      const name = q.get('name');
      if (!ns || !name) throw new MeshfedError('invalid', 'namespace and name are required');
      const zone = q.get('zone') ?? undefined;
      if (zone && agent.zones().length && !agent.zones().includes(zone)) {
        throw new MeshfedError('invalid', `zone "${zone}" is not a zone of cluster ${agent.cluster} (${agent.zones().join(', ')})`);
      }
      const loc = agent.locality(zone);
      if (q.get('envoy') === '1' || q.get('envoy') === 'true') {
        return json(
          res,
          200,
          envoyBootstrap({
            xdsServer: formatHostPort(agent.xdsAddress),
            nodeId: nodeIdFor(agent.cluster, ns, name),
            cluster: agent.cluster,
            locality: { region: loc.region, zone: loc.zone, subZone: loc.subZone },
            delta: q.get('delta') === '1' || q.get('delta') === 'true',
          }),
        );
      }
      return json(
        res,
        200,
        grpcBootstrap({
          xdsServer: formatHostPort(agent.xdsAddress),
          nodeId: nodeIdFor(agent.cluster, ns, name),
          cluster: agent.cluster,
          locality: { region: loc.region, zone: loc.zone, subZone: loc.subZone },
          server: q.get('server') === '1' || q.get('server') === 'true',
          ...(q.get('certDir') ? { certDir: q.get('certDir')! } : {}),
        }),
      );
    }
    case 'POST /v1/identity/tokens': {
      const body = await readJsonObject(req);
      if (typeof body.namespace !== 'string' || !body.namespace) throw new MeshfedError('invalid', 'namespace: required');
      if (typeof body.serviceAccount !== 'string' || !body.serviceAccount) throw new MeshfedError('invalid', 'serviceAccount: required');
      allow(who, { verb: 'mint-identity-token', kind: 'Identity', namespace: body.namespace, name: body.serviceAccount });
      return json(res, 201, await identity(agent).createToken({ ...body, ttlSeconds: body.ttlSeconds ?? IDENTITY_TOKEN_TTL_S }));
    }
    case 'GET /v1/identity/tokens':
      allow(who, { verb: 'read', kind: 'IdentityToken' });
      return json(res, 200, { items: identity(agent).tokenList() });
    case 'POST /v1/auth/tokens': {
      const body = await readJsonObject(req);
      if (typeof body.namespace !== 'string' || !body.namespace) throw new MeshfedError('invalid', 'namespace: required');
      allow(who, { verb: 'mint-namespace-token', kind: 'Token' });
      const sas = body.serviceAccounts ?? [];
      if (!Array.isArray(sas) || !sas.every((x) => typeof x === 'string' && x)) throw new MeshfedError('invalid', 'serviceAccounts: a list of names');
      const ttl = body.ttl ?? '24h';
      if (typeof ttl !== 'string' || !new RegExp(DURATION).test(ttl)) throw new MeshfedError('invalid', `ttl: "${String(ttl)}" is not a duration (e.g. 1h, 24h)`);
      if (!auth.mintNamespaceToken) throw new MeshfedError('invalid', 'this agent does not mint namespace tokens');
      return json(res, 201, await auth.mintNamespaceToken(body.namespace, sas as string[], durationMs(ttl)));
    }
    case 'GET /v1/identity/whoami':
      return json(res, 200, identity(agent).whoami(req.headers.authorization));
    case 'POST /v1/identity/certificates':
      return json(res, 200, await identity(agent).sign(req.headers.authorization, (await readJsonObject(req)).csr));
    case 'GET /v1/identity/certificates':
      allow(who, { verb: 'read', kind: 'IdentityCertificate' });
      return json(res, 200, { cluster: agent.cluster, items: identity(agent).issuedCertificates() });
    case 'GET /v1/identity/bundle':
      identity(agent).whoami(req.headers.authorization);
      return json(res, 200, identity(agent).bundle());
    default:
      throw new MeshfedError('not-found', `no route for ${route}`);
  }
}

function identity(agent: AgentApi): WorkloadIdentity {
  if (!agent.identity) throw new MeshfedError('unavailable', 'the agent is starting');
  return agent.identity;
}
