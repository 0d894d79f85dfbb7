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
// Depends on the agent only through AgentApi (implemented by Agent), so this
// file does not import agent.ts. Errors are MeshfedErrors: their code gives the
// HTTP status; anything else is a 500. The body is always {error: message}.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Registration, RegistrationSource } from '../discovery/registration.js';
import type { FederatedView } from '../federation/types.js';
import { envoyBootstrap, grpcBootstrap, nodeIdFor } from '../xds/bootstrap.js';
import { formatHostPort, type HostPort } from '../util/address.js';
import { errorMessage, httpStatusOf, MeshfedError } from '../util/errors.js';
import { applyServerTimeouts, readJsonObject, sendJson as json } from '../util/http-body.js';
import { collectGarbage } from '../util/memory.js';
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
  status(): { ready: boolean; memory: Record<string, number> };
  federatedView(): FederatedView;
  proxies(): ProxySummary[];
  /** The xDS server's full per-stream state. */
  rawProxies(): unknown;
  zones(): string[];
  locality(zone?: string): { region: string; zone: string; subZone: string };
}

export function createAgentHttpServer(agent: AgentApi): Server {
  const server = createServer((req, res) => {
    handle(agent, req, res).catch((err: unknown) => {
      json(res, httpStatusOf(err), { error: errorMessage(err) });
    });
  });
  return applyServerTimeouts(server);
}

async function handle(agent: AgentApi, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://agent');
  const q = url.searchParams;
  const route = `${req.method} ${url.pathname}`;
  switch (route) {
    case 'GET /healthz':
      return json(res, 200, { ok: true, ready: agent.status().ready });
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
      const r = await agent.registrations.register(body);
      return json(res, r.outcome === 'created' ? 201 : 200, r);
    }
    case 'DELETE /v1/workloads': {
      const sel: { namespace?: string; name?: string; address?: string } = {};
      for (const k of ['namespace', 'name', 'address'] as const) if (q.get(k)) sel[k] = q.get(k)!;
      if (!sel.name && !sel.address) throw new MeshfedError('invalid', 'pass name (and namespace) or address');
      const removed = await agent.registrations.deregister(sel);
      return json(res, 200, { removed });
    }
    case 'GET /v1/services':
      return json(res, 200, agent.federatedView());
    case 'GET /v1/proxies':
      return json(res, 200, { cluster: agent.cluster, viewRevision: agent.currentViewRevision, items: agent.proxies() });
    case 'POST /v1/gc':
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
    case 'POST /v1/identity/tokens':
      return json(res, 201, await identity(agent).createToken(await readJsonObject(req)));
    case 'GET /v1/identity/tokens':
      return json(res, 200, { items: identity(agent).tokenList() });
    case 'GET /v1/identity/whoami':
      return json(res, 200, identity(agent).whoami(req.headers.authorization));
    case 'POST /v1/identity/certificates':
      return json(res, 200, await identity(agent).sign(req.headers.authorization, (await readJsonObject(req)).csr));
    case 'GET /v1/identity/certificates':
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
