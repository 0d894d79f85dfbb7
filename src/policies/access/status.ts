// AccessPolicy status, computed by the hub at read time (like the other policy
// kinds): the workloads that enforce it, the identities it matches, and every
// reference the current state cannot satisfy, with the field path. Pure.
import { serviceMode, type MtlsMode, type SecuritySettings } from '../../api/index.js';
import type { FederatedView, GlobalService } from '../../federation/types.js';
import { compileSources, destinationSelects, type AccessEnv, type AccessTarget, type IdentityEndpoint } from './evaluate.js';
import type { AccessPolicy } from './kind.js';
import { viewIdentities } from '../common.js';
import type { ProxyFacts } from '../plugin.js';

export interface AccessStatusOut {
  services: string[];
  clusters: string[];
  conflicts: { service: string; field: string; winner: string; message: string }[];
  problems: { path: string; message: string }[];
  destinations: string[];
  sources: string[];
}

/** Every workload of the view as a target (all its ports), with the service's mTLS mode. */
export function accessTargets(view: FederatedView, security: SecuritySettings | undefined): AccessTarget[] {
  const out: AccessTarget[] = [];
  for (const g of view.services) out.push(...serviceTargets(g, security));
  return out;
}

export function serviceTargets(g: GlobalService, security: SecuritySettings | undefined, mode?: MtlsMode): AccessTarget[] {
  const m = mode ?? serviceMode(security, g.namespace, g.name);
  return g.parts.flatMap((part) =>
    part.endpoints.map((e) => ({
      cluster: e.cluster,
      namespace: g.namespace,
      service: g.name,
      workload: e.workload,
      serviceLabels: part.labels ?? {},
      ports: part.ports.filter((p) => e.ports[p.name] !== undefined).map((p) => ({ name: p.name, port: p.port })),
      mode: m,
    })),
  );
}

/** Every endpoint of the view, as label sources see workloads. */
export const viewEndpoints: (view: FederatedView) => IdentityEndpoint[] = viewIdentities;

/**
 * `proxies`: what the hub knows of the servers (proxy-status); a selected
 * workload whose gRPC server rejected RBAC filters is a problem (it does not
 * enforce the policy). Unknown servers are not: the hub learns of a missing
 * RBAC support only from a NACK.
 */
export function accessStatuses(
  view: FederatedView,
  policies: readonly AccessPolicy[],
  security: SecuritySettings | undefined,
  defaultAction: 'ALLOW' | 'DENY',
  proxies?: ProxyFacts,
): Map<string, AccessStatusOut> {
  const out = new Map<string, AccessStatusOut>();
  const targets = accessTargets(view, security);
  const endpoints = viewEndpoints(view);
  const clusters = new Set(view.clusters.map((c) => c.name));
  const td = security?.trustDomain ?? 'meshfed.local';
  for (const p of policies) {
    const ns = p.metadata.namespace!;
    const env: AccessEnv = { trustDomain: td, defaultAction, policies: [p], endpoints: () => endpoints };
    const st: AccessStatusOut = { services: [], clusters: [], conflicts: [], problems: [], destinations: [], sources: [] };
    const selected = targets.filter((t) => t.namespace === ns && p.spec.destinations.some((d) => destinationSelects(d, t)));
    st.destinations = selected.map((t) => `${t.cluster}/${t.namespace}/${t.workload} (${t.service})`).sort();
    st.services = [...new Set(selected.map((t) => `${t.service}.${t.namespace}`))].sort();
    st.clusters = [...new Set(selected.map((t) => t.cluster))].sort();
    const cs = compileSources(env, p, { mode: 'STRICT', service: '', namespace: ns });
    st.sources = cs.sourceText;

    p.spec.destinations.forEach((d, i) => {
      const path = `/spec/destinations/${i}`;
      if (targets.some((t) => t.namespace === ns && destinationSelects(d, t))) return;
      if (d.cluster !== undefined && !clusters.has(d.cluster)) return st.problems.push({ path: `${path}/cluster`, message: `no member cluster "${d.cluster}"` });
      const named = view.services.filter((g) => g.namespace === ns && (d.name === undefined || g.name === d.name));
      if (d.name !== undefined && named.length === 0) return st.problems.push({ path: `${path}/name`, message: `no service "${d.name}" in namespace "${ns}"` });
      if (d.cluster !== undefined && !named.some((g) => g.parts.some((x) => x.cluster === d.cluster && x.endpoints.length > 0))) {
        return st.problems.push({ path: `${path}/cluster`, message: `${d.name ? `service "${d.name}"` : `no service of namespace "${ns}"`} has no workload in cluster "${d.cluster}"` });
      }
      if (d.ports) {
        const known = new Set(named.flatMap((g) => g.ports.flatMap((x) => [x.port, x.name])));
        const k = d.ports.findIndex((x) => !known.has(x));
        if (k >= 0)
          return st.problems.push({ path: `${path}/ports/${k}`, message: `no port ${JSON.stringify(d.ports[k])} on ${d.name ? `service "${d.name}"` : `the services of namespace "${ns}"`}` });
      }
      return st.problems.push({ path, message: `selects no workload in namespace "${ns}"` });
    });

    p.spec.sources?.forEach((s, i) => {
      const path = `/spec/sources/${i}`;
      if (s.cluster !== undefined && !clusters.has(s.cluster)) return st.problems.push({ path: `${path}/cluster`, message: `no member cluster "${s.cluster}"` });
      const where = [s.cluster, s.namespace].filter(Boolean).join('/');
      const inScope = endpoints.filter((e) => (s.cluster === undefined || e.cluster === s.cluster) && (s.namespace === undefined || e.namespace === s.namespace));
      if (s.labels) {
        const hit = inScope.filter((e) => (s.serviceAccount === undefined || e.serviceAccount === s.serviceAccount) && Object.entries(s.labels!).every(([k, v]) => e.labels[k] === v));
        if (hit.length === 0)
          return st.problems.push({ path: `${path}/labels`, message: `no workload${where ? ` in ${where}` : ''} has labels ${JSON.stringify(s.labels)}: this source matches no caller` });
        return;
      }
      if (s.namespace !== undefined && !inScope.length && !view.services.some((g) => g.namespace === s.namespace)) {
        return st.problems.push({ path: `${path}/namespace`, message: `no known service or workload in namespace "${s.namespace}"${s.cluster ? ` of cluster "${s.cluster}"` : ''}` });
      }
      if (s.serviceAccount !== undefined && !inScope.some((e) => e.serviceAccount === s.serviceAccount)) {
        return st.problems.push({
          path: `${path}/serviceAccount`,
          message: `no known workload${where ? ` in ${where}` : ''} runs as service account "${s.serviceAccount}" (callers that are not registered as workloads still match by their certificate)`,
        });
      }
      return;
    });

    const withoutRbac = selected.filter((t) => proxies?.serversWithoutRbac.has(`${t.cluster}/${t.namespace}/${t.workload}`)).map((t) => `${t.cluster}/${t.namespace}/${t.workload}`);
    if (withoutRbac.length > 0) {
      st.problems.push({
        path: '/spec/destinations',
        message: `the gRPC server of ${[...new Set(withoutRbac)].sort().join(', ')} rejected RBAC filters (proxy-status: NACK): it does not enforce this policy until it is restarted with GRPC_XDS_EXPERIMENTAL_RBAC=true`,
      });
    }

    const plaintext = [...new Set(selected.filter((t) => t.mode !== 'STRICT').map((t) => `${t.service}.${t.namespace} (${t.mode})`))];
    if (plaintext.length > 0 && p.spec.sources) {
      st.problems.push({
        path: '/spec/sources',
        message:
          p.spec.action === 'ALLOW'
            ? `${plaintext.join(', ')} is not STRICT: callers have no identity, so these sources match no call there (calls are denied)`
            : `${plaintext.join(', ')} is not STRICT: callers have no identity, so this DENY policy denies every caller there (fail closed)`,
      });
    }
    out.set(`AccessPolicy ${ns}/${p.metadata.name}`, st);
  }
  return out;
}
