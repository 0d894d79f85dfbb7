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
import { ResolvedPolicies, type PolicyConflict, type PolicySet, type PolicyStatusOut } from './plugin.js';

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

/**
 * Status of every policy against a federated view: what it selects, where it
 * is in effect, the conflicts it lost, and references the view cannot satisfy.
 */
export function policyStatuses(view: FederatedView, set: PolicySet, mesh?: Mesh): Map<string, PolicyStatusOut> {
  const out = new Map<string, PolicyStatusOut>();
  const env = { security: securitySettings(mesh), accessDefault: meshSettings(mesh).accessDefault };
  for (const plugin of set.plugins) {
    const policies = set.of(plugin);
    if (policies.length === 0) continue;
    for (const [id, st] of plugin.status(view, policies, env)) out.set(id, st);
  }
  for (const c of view.clusters) {
    for (const s of view.services) {
      for (const x of resolveServicePolicy(s, set, c.name).conflicts) {
        const st = out.get(x.policy)!;
        if (!st.conflicts.some((y) => y.service === x.service && y.field === x.field && y.winner === x.winner)) {
          st.conflicts.push({ service: x.service, field: x.field, winner: x.winner, message: x.message.replace(` (clients in ${c.name})`, '') });
        }
      }
    }
  }
  return out;
}
