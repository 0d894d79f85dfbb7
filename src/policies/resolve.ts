// Resolution and status over every plugin of a PolicySet. Which policies apply
// to a global service for clients in one cluster, with the precedence rule
// (per field, the OLDEST policy wins: creation time at the hub, then name;
// each plugin applies it to its own fields), and the status of every policy,
// with the conflicts it lost. Kind-agnostic: the plugins in the set do the
// kind-specific work. Pure: the agent (per changed service), the hub (status)
// and plan/explain all use it.
import { meshSettings, securitySettings, type Mesh } from '../api/index.js';
import type { FederatedView, GlobalService } from '../federation/types.js';
import { policyId, type PolicyObject } from './common.js';
import { ResolvedPolicies, type PolicyConflict, type PolicySet, type PolicyStatusOut, type ProxyFacts, type StatusEnv } from './plugin.js';

/** What applies to one global service for clients in `sourceCluster`, and the conflicts precedence decided. */
export function resolveServicePolicy(service: GlobalService, set: PolicySet, sourceCluster: string): { policy: ResolvedPolicies; conflicts: PolicyConflict[] } {
  const policy = new ResolvedPolicies();
  const conflicts: PolicyConflict[] = [];
  const svc = `${service.name}.${service.namespace}`;
  const lose = (p: PolicyObject, field: string, winner: string) =>
    conflicts.push({
      policy: policyId(p),
      service: svc,
      field,
      winner,
      message: `${field} for ${svc} (clients in ${sourceCluster}) comes from the older ${winner}; this policy's ${field} is ignored there (oldest wins)`,
    });
  for (const plugin of set.plugins) {
    if (!plugin.resolve) continue;
    const policies = set.of(plugin);
    if (policies.length === 0) continue;
    const value: unknown = plugin.resolve(policies, service, sourceCluster, lose);
    if (value !== undefined) policy.set(plugin, value);
  }
  return { policy, conflicts };
}

/** What policyStatuses may be told besides the view: proxy facts, and which policies to report. */
export interface StatusOptions {
  proxies?: ProxyFacts;
  /** Report only these policies (ids "Kind ns/name"): apply's checks of what it writes cost what is written, not the fleet. */
  only?: ReadonlySet<string>;
}

/**
 * Status of every policy against a federated view: what it selects, where it
 * is in effect, the conflicts it lost, and references the view cannot satisfy.
 * Each policy's status depends on the view and the older policies only, so
 * `only` gives the same statuses as the whole computation for those policies.
 */
export function policyStatuses(view: FederatedView, set: PolicySet, mesh?: Mesh, opts: StatusOptions = {}): Map<string, PolicyStatusOut> {
  const out = new Map<string, PolicyStatusOut>();
  const env: StatusEnv = { security: securitySettings(mesh), accessDefault: meshSettings(mesh).accessDefault };
  if (opts.proxies) env.proxies = opts.proxies;
  const only = opts.only;
  for (const plugin of set.plugins) {
    const policies = only ? set.of(plugin).filter((p) => only.has(policyId(p))) : set.of(plugin);
    if (policies.length === 0) continue;
    for (const [id, st] of plugin.status(view, policies, env)) out.set(id, st);
  }
  // Conflicts: only the services a reported policy selects can hold one of its conflicts.
  const selected = only ? new Set([...out.values()].flatMap((st) => st.services)) : undefined;
  const services = selected ? view.services.filter((s) => selected.has(`${s.name}.${s.namespace}`)) : view.services;
  for (const c of view.clusters) {
    for (const s of services) {
      for (const x of resolveServicePolicy(s, set, c.name).conflicts) {
        const st = out.get(x.policy);
        if (!st) continue;
        if (!st.conflicts.some((y) => y.service === x.service && y.field === x.field && y.winner === x.winner)) {
          st.conflicts.push({ service: x.service, field: x.field, winner: x.winner, message: x.message.replace(` (clients in ${c.name})`, '') });
        }
      }
    }
  }
  return out;
}
