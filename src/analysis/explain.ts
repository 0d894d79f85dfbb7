// `meshfed explain`: why a call from one workload to a service goes where it
// goes, and whether each destination lets it in. Computed at the hub from the
// current objects (optionally with some applied as a dry run, as `plan` does)
// with the same functions the agents run: the client resources the source
// cluster's agent would serve (route, clusters, priorities, weights) and the
// RBAC rules each destination workload's server would enforce, evaluated for
// the caller's identity. Pure.
import { meshSettings, theMesh, type ApiObject, type Mesh, type MtlsMode, type Workload } from '../api/index.js';
import type { GlobalService } from '../federation/types.js';
import { translateService } from '../translate/xds/index.js';
import { callerIdentity, compileAccess, evaluateAccess, type AccessEnv, type AccessVerdict } from '../policies/access/evaluate.js';
import { serviceTargets, viewEndpoints } from '../policies/access/status.js';
import { METHOD_PATTERN } from '../policies/access/kind.js';
import { dryRunObjects, viewOf } from './plan.js';
import { resolveServicePolicy } from '../policies/resolve.js';
import { ENDPOINT_TYPE, ROUTE_TYPE } from '../xdsapi/index.js';
import { TrafficPolicyPlugin } from '../policies/traffic/plugin.js';
import { AccessPolicyPlugin } from '../policies/access/plugin.js';
import { clusterOf, serviceMode, type SecuritySettings } from '../api/index.js';
import { policySet } from '../registry.js';
import { MeshfedError } from '../util/errors.js';

export interface ExplainRequest {
  /** The calling workload. serviceAccount is needed only when it is not a registered Workload. */
  from: { cluster: string; namespace: string; workload: string; serviceAccount?: string };
  /** What the caller dials: service, service.namespace, a per-cluster or clusterset name; optional :port. */
  to: string;
  /** pkg.Service/Method */
  method?: string;
  /** Objects applied as a dry run first. */
  with?: ApiObject[];
}

export interface ExplainEndpoint {
  cluster: string;
  workload: string;
  address: string;
  zone: string;
  /** xDS cluster (backend set) the route sends it calls through. */
  backend: string;
  /** Failover priority in that backend set (0 first; higher ones get calls only when the lower have no healthy endpoint). */
  priority: number;
  health: string;
  /** Percent of the route's calls it gets now. */
  share: number;
  mtls: MtlsMode;
  /** The caller as this server sees it: its SPIFFE ID over mTLS, none otherwise. */
  callerIdentity: string | null;
  access: AccessVerdict;
}

export interface ExplainResult {
  from: { cluster: string; namespace: string; workload: string; serviceAccount: string; registered: boolean; identity: string };
  to: { service: string; hostname: string; port: number; path: string | null };
  applied: string[];
  route: { name: string; match: string; from: string } | null;
  skippedRoutes: { name: string; match: string; why: string }[];
  endpoints: ExplainEndpoint[];
  /** ALLOW when every endpoint that gets calls allows them, DENY when none does, MIXED otherwise. */
  verdict: 'ALLOW' | 'DENY' | 'MIXED' | 'NO_ENDPOINT';
  notes: string[];
}

/** An explain request that names something unknown (from, to: not-found) or malformed (invalid). */
export class ExplainError extends MeshfedError {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(field === 'from' || field === 'to' ? 'not-found' : 'invalid', `${field}: ${message}`, { reason: 'Invalid' });
  }
}

interface RouteMsg {
  name: string;
  match: { prefix?: string; path?: string; headers?: { name: string }[] };
  route: { cluster?: string; weighted_clusters?: { clusters: { name: string; weight: { value: number } }[] } };
}
interface ClaMsg {
  endpoints: {
    locality: { zone: string; sub_zone: string };
    load_balancing_weight: { value: number };
    priority: number;
    lb_endpoints: { endpoint: { address: { socket_address: { address: string; port_value: number } } }; health_status: string }[];
  }[];
}

function findService(services: GlobalService[], to: string, ns: string): { g: GlobalService; hostname: string; port?: number } | undefined {
  const m = /^(.*?)(?::(\d+))?$/.exec(to)!;
  const host = m[1]!;
  const port = m[2] ? Number(m[2]) : undefined;
  const candidates = host.includes('.') ? [host] : [`${host}.${ns}`];
  for (const g of services) {
    for (const h of [...g.hostnames, ...g.parts.map((p) => p.hostname)]) {
      if (candidates.includes(h)) return { g, hostname: h, ...(port !== undefined ? { port } : {}) };
    }
  }
  return undefined;
}

function describeMatch(m: RouteMsg['match']): string {
  const parts: string[] = [];
  if (m.path !== undefined) parts.push(`path ${m.path}`);
  else if (m.prefix) parts.push(`prefix ${m.prefix}`);
  for (const h of m.headers ?? []) parts.push(`header ${h.name}`);
  return parts.join(', ') || 'every call';
}

export function explain(current: ApiObject[], req: ExplainRequest, now = new Date().toISOString()): ExplainResult {
  if (req.method !== undefined && !new RegExp(METHOD_PATTERN).test(req.method)) throw new ExplainError('method', `"${req.method}" is not pkg.Service/Method`);
  const objects = req.with?.length ? dryRunObjects(current, req.with, now) : current;
  const view = viewOf(objects);
  const set = policySet(objects);
  const mesh = theMesh(objects) as Mesh | undefined;
  const ms = meshSettings(mesh);
  const security: SecuritySettings = { trustDomain: ms.trustDomain, mode: ms.mtlsMode, serviceModes: ms.serviceModes };
  const notes: string[] = [];

  const { cluster, namespace, workload } = req.from;
  const me = view.clusters.find((c) => c.name === cluster);
  if (!me) throw new ExplainError('from', `no member cluster "${cluster}"`);
  const w = objects.find((o) => o.kind === 'Workload' && clusterOf(o) === cluster && o.metadata.namespace === namespace && o.metadata.name === workload) as Workload | undefined;
  const sa = w?.spec.serviceAccount ?? req.from.serviceAccount;
  if (!sa) throw new ExplainError('from', `no Workload "${workload}" in ${cluster}/${namespace}: pass its service account (--service-account), which its identity names`);
  if (w && req.from.serviceAccount && req.from.serviceAccount !== w.spec.serviceAccount) {
    notes.push(`the registered Workload runs as "${w.spec.serviceAccount}", not "${req.from.serviceAccount}": using the registration`);
  }
  if (!w) notes.push(`${cluster}/${namespace}/${workload} is not a registered Workload: its identity comes from the service account given (${sa})`);

  const found = findService(view.services, req.to, namespace);
  if (!found) throw new ExplainError('to', `no service reachable as "${req.to}" (try name.namespace)`);
  const { g, hostname } = found;
  const port = found.port ?? g.ports[0]!.port;
  const path = req.method ? `/${req.method}` : null;
  const listener = found.port !== undefined ? `${hostname}:${port}` : hostname;
  const result: ExplainResult = {
    from: { cluster, namespace, workload, serviceAccount: sa, registered: w !== undefined, identity: callerIdentity(ms.trustDomain, 'STRICT', { cluster, namespace, serviceAccount: sa })! },
    to: { service: `${g.name}.${g.namespace}`, hostname, port, path },
    applied: (req.with ?? []).map((o) => `${o.kind} ${o.metadata.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata.name}`),
    route: null,
    skippedRoutes: [],
    endpoints: [],
    verdict: 'NO_ENDPOINT',
    notes,
  };

  // What the source cluster's agent serves for this service: the same translation.
  const { resources } = translateService(g, { cluster, locality: { region: me.region, zones: me.zones }, policies: set, security });
  const rc = resources.find((r) => r.typeUrl === ROUTE_TYPE && r.name === listener);
  if (!rc) throw new ExplainError('to', `clients in ${cluster} cannot dial "${listener}" (no such name or port there)`);
  const routes = (rc.message.virtual_hosts as { routes: RouteMsg[] }[])[0]!.routes;
  let chosen: RouteMsg | undefined;
  for (const r of routes) {
    const m = r.match;
    if (m.headers?.length) {
      result.skippedRoutes.push({ name: r.name, match: describeMatch(m), why: `needs header(s) ${m.headers.map((h) => h.name).join(', ')}; explain assumes a call without them` });
      continue;
    }
    const target = m.path ?? m.prefix ?? '';
    if (target === '') {
      chosen = r;
      break;
    }
    if (path === null) {
      result.skippedRoutes.push({ name: r.name, match: describeMatch(m), why: 'matches only some methods; pass --method to consider it' });
      continue;
    }
    if (m.path !== undefined ? path === m.path : path.startsWith(target)) {
      chosen = r;
      break;
    }
    result.skippedRoutes.push({ name: r.name, match: describeMatch(m), why: `does not match ${path}` });
  }
  if (!chosen) {
    notes.push('no route matches this call: clients fail it (UNAVAILABLE)');
    return result;
  }
  const sp = resolveServicePolicy(g, set, cluster).policy;
  result.route = { name: chosen.name, match: describeMatch(chosen.match), from: sp.get(TrafficPolicyPlugin)?.routes?.from ?? 'no TrafficPolicy (default route)' };

  // Backends of the route, and per endpoint its priority and current share.
  const targets = chosen.route.cluster ? [{ name: chosen.route.cluster, w: 1 }] : (chosen.route.weighted_clusters?.clusters ?? []).map((c) => ({ name: c.name, w: c.weight.value }));
  const total = targets.reduce((s, t) => s + t.w, 0) || 1;
  const byAddr = new Map<string, { cluster: string; workload: string; zone: string }>();
  for (const part of g.parts) for (const e of part.endpoints) for (const p of Object.values(e.ports)) byAddr.set(`${e.address}:${p}`, { cluster: e.cluster, workload: e.workload, zone: e.zone });
  const mode = serviceMode(security, g.namespace, g.name);
  const identity = callerIdentity(ms.trustDomain, mode, { cluster, namespace, serviceAccount: sa });
  if (mode !== 'STRICT') notes.push(`${g.name}.${g.namespace} is ${mode}: calls are plaintext, so servers see no caller identity`);
  const endpoints = viewEndpoints(view);
  const env: AccessEnv = { trustDomain: ms.trustDomain, defaultAction: ms.accessDefault, policies: set.of(AccessPolicyPlugin), endpoints: () => endpoints };
  const allTargets = serviceTargets(g, security, mode);
  for (const t of targets) {
    const cla = resources.find((r) => r.typeUrl === ENDPOINT_TYPE && r.name === t.name)?.message as unknown as ClaMsg | undefined;
    const locs = cla?.endpoints ?? [];
    const healthyPrio = Math.min(...locs.filter((l) => l.lb_endpoints.some((e) => e.health_status === 'HEALTHY')).map((l) => l.priority));
    const serving = locs.filter((l) => l.priority === healthyPrio);
    const lw = serving.reduce((s, l) => s + l.load_balancing_weight.value, 0) || 1;
    for (const l of locs) {
      const healthy = l.lb_endpoints.filter((e) => e.health_status === 'HEALTHY').length;
      for (const e of l.lb_endpoints) {
        const sa2 = e.endpoint.address.socket_address;
        const addr = `${sa2.address}:${sa2.port_value}`;
        const who = byAddr.get(addr) ?? { cluster: l.locality.sub_zone, workload: addr, zone: l.locality.zone };
        const gets = l.priority === healthyPrio && e.health_status === 'HEALTHY';
        const share = gets ? (100 * (t.w / total) * (l.load_balancing_weight.value / lw)) / healthy : 0;
        const target = allTargets.find((x) => x.cluster === who.cluster && x.workload === who.workload);
        const access: AccessVerdict = target
          ? evaluateAccess(compileAccess(env, { ...target, ports: target.ports.filter((p) => p.port === port) }), { ...(identity ? { identity } : {}), ...(path ? { path } : {}) })
          : { action: ms.accessDefault, decidedBy: 'default', reason: 'unknown workload: only the Mesh default applies' };
        result.endpoints.push({
          cluster: who.cluster,
          workload: who.workload,
          address: addr,
          zone: who.zone,
          backend: t.name,
          priority: l.priority,
          health: e.health_status,
          share: Math.round(share * 100) / 100,
          mtls: mode,
          callerIdentity: identity ?? null,
          access,
        });
      }
    }
  }
  for (const c of view.clusters) {
    if (!c.liveness || !result.endpoints.some((e) => e.cluster === c.name)) continue;
    notes.push(
      c.liveness.state === 'Withdrawn'
        ? `${c.name} is Withdrawn (its agent unheard since ${c.liveness.lastHeartbeat}, past the Mesh's hold-down): its endpoints are at the last priority, used only when nothing else is left`
        : `${c.name} is Suspect (its agent unheard since ${c.liveness.lastHeartbeat}): its endpoints are stale but still served where they were until the hold-down`,
    );
  }
  const live = result.endpoints.filter((e) => e.share > 0);
  const allowed = live.filter((e) => e.access.action === 'ALLOW').length;
  result.verdict = live.length === 0 ? 'NO_ENDPOINT' : allowed === live.length ? 'ALLOW' : allowed === 0 ? 'DENY' : 'MIXED';
  if (path === null && set.of(AccessPolicyPlugin).some((p) => p.metadata.namespace === g.namespace && p.spec.destinations.some((d) => d.methods || d.paths))) {
    notes.push('some AccessPolicies of this namespace restrict methods: without --method, a call matches none of their method rules');
  }
  return result;
}

/** What `meshfed explain` prints. */
export function formatExplain(r: ExplainResult): string {
  const out: string[] = [];
  out.push(`call from ${r.from.cluster}/${r.from.namespace}/${r.from.workload} (${r.from.identity}) to ${r.to.hostname}:${r.to.port}${r.to.path ? `, method ${r.to.path}` : ''}`);
  if (r.applied.length) out.push(`as if applied (dry run; nothing was changed): ${r.applied.join(', ')}`);
  out.push('');
  if (r.route) out.push(`route: ${r.route.name} (${r.route.match}), from ${r.route.from}`);
  else out.push('route: none matches');
  for (const s of r.skippedRoutes) out.push(`  skipped ${s.name} (${s.match}): ${s.why}`);
  if (r.endpoints.length) {
    out.push('', `endpoints, as clients in ${r.from.cluster} reach them:`);
    const rows = [['CLUSTER', 'WORKLOAD', 'ADDRESS', 'PRIORITY', 'SHARE', 'HEALTH', 'MTLS', 'ACCESS', 'DECIDED BY']];
    for (const e of r.endpoints) rows.push([e.cluster, e.workload, e.address, String(e.priority), `${e.share}%`, e.health, e.mtls, e.access.action, e.access.decidedBy]);
    const w = rows[0]!.map((_, i) => Math.max(...rows.map((x) => x[i]!.length)));
    for (const row of rows) out.push('  ' + row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(w[i]!))).join('  '));
    out.push('', 'why:');
    // Endpoints with the same verdict and reason are listed together.
    const why = new Map<string, string[]>();
    for (const e of r.endpoints) {
      const line = `${e.access.action}: ${e.access.reason}`;
      const k = `${e.cluster}/${e.workload}`;
      const list = why.get(line) ?? [];
      if (!list.includes(k)) list.push(k);
      why.set(line, list);
    }
    for (const [line, who] of why) out.push(`  ${who.join(', ')}: ${line}`);
  }
  for (const n of r.notes) out.push(`note: ${n}`);
  const v = { ALLOW: 'allowed', DENY: 'DENIED (PERMISSION_DENIED)', MIXED: 'MIXED: allowed by some endpoints that get calls, denied by others', NO_ENDPOINT: 'no endpoint gets calls (UNAVAILABLE)' }[
    r.verdict
  ];
  out.push('', `verdict: ${v}`);
  return out.join('\n') + '\n';
}
