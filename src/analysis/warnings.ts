// Warnings about objects being written, the way Kubernetes admission warnings
// are: what `meshfed plan` and policy status find about them (a split target
// without endpoints, a cluster no Cluster object names, a lost conflict, an
// AccessPolicy on servers that rejected RBAC filters), one line each naming
// the object, the field and the problem. `meshfed apply` prints them (and
// `--strict` refuses the whole apply), `meshfed plan` prints the same lines:
// both come from policyWarnings over the same policy statuses. The checks
// themselves live in each kind's plugin (status); this file only dry-runs and
// words them. Pure: the hub passes the objects and what it knows of proxies.
import { fieldName, type ApiObject, type Mesh } from '../api/index.js';
import type { FederatedView } from '../federation/types.js';
import { policyId, type PolicyObject } from '../policies/common.js';
import type { PolicyStatusOut, ProxyFacts } from '../policies/plugin.js';
import { policyStatuses } from '../policies/resolve.js';
import { AccessPolicyPlugin } from '../policies/access/plugin.js';
import { LISTENER_TYPE } from '../xdsapi/index.js';
import { parseNodeId } from '../xds/bootstrap.js';
import { POLICY_KINDS, policySet } from '../registry.js';

/** The warning lines of the applied objects' statuses: problems, then conflicts, in the order the plugins found them. */
export function policyWarnings(statuses: ReadonlyMap<string, PolicyStatusOut>, applied: readonly ApiObject[]): string[] {
  const out: string[] = [];
  for (const o of applied) {
    if (!POLICY_KINDS.has(o.kind)) continue;
    const id = policyId(o as unknown as PolicyObject);
    const st = statuses.get(id);
    if (!st) continue;
    for (const p of st.problems) out.push(`${id}: ${fieldName(p.path)}: ${p.message}`);
    for (const c of st.conflicts) out.push(`${id}: ${c.field}: ${c.message}`);
  }
  return out;
}

/** Ids ("Kind ns/name") of the policies among `objects`. */
export function policyIds(objects: readonly ApiObject[]): Set<string> {
  return new Set(objects.filter((o) => POLICY_KINDS.has(o.kind)).map((o) => policyId(o as unknown as PolicyObject)));
}

/**
 * The warnings of applying `applied`, given the view and every policy as they
 * would be after the apply (dryRunObjects: the applied ones included, new
 * ones the newest). Only the applied policies' statuses are computed.
 */
export function applyWarnings(view: FederatedView, mesh: Mesh | undefined, policiesAfter: readonly ApiObject[], applied: readonly ApiObject[], proxies?: ProxyFacts): string[] {
  const only = policyIds(applied);
  if (only.size === 0) return [];
  const opts: Parameters<typeof policyStatuses>[3] = { only };
  if (proxies) opts.proxies = proxies;
  return policyWarnings(policyStatuses(view, policySet(policiesAfter), mesh, opts), applied);
}

/** One agent's proxy-status report, as the hub keeps it (GET /proxies): items are the agent's proxy summaries. */
export interface ProxyReport {
  cluster: string;
  items: unknown[];
}

/**
 * What the proxy-status reports tell plan and apply: the workloads (by node id
 * cluster~namespace~workload) whose last Listener response was NACKed for an
 * AccessPolicy RBAC filter (the plugin's own NACK hint recognises it).
 */
export function proxyFacts(reports: readonly ProxyReport[]): ProxyFacts {
  const serversWithoutRbac = new Set<string>();
  for (const r of reports) {
    for (const item of r.items) {
      const p = item as { nodeId?: unknown; types?: Record<string, { state?: string; nack?: string }> };
      const lds = p.types?.LDS;
      if (typeof p.nodeId !== 'string' || lds?.state !== 'NACKED' || typeof lds.nack !== 'string') continue;
      if (!AccessPolicyPlugin.xds?.nackHint?.(LISTENER_TYPE, lds.nack)) continue;
      const node = parseNodeId(p.nodeId);
      if (node) serversWithoutRbac.add(`${node.cluster}/${node.namespace}/${node.workload}`);
    }
  }
  return { serversWithoutRbac };
}
