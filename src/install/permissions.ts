// What meshfed may do in a Kubernetes cluster: the ONE table of the agent's and
// the hub's permissions. The ClusterRoles `meshfed install` prints are made
// from it, docs/kubernetes.md#install shows it (a test keeps the two equal),
// and the agent's Kubernetes code names the permission it lacks from the same
// (verb, group, resource) triples.
//
// Least privilege, with one limit of RBAC: a rule cannot select objects by
// label, so "EndpointSlices the agent owns" is enforced by the agent (it writes
// and deletes only objects labelled as its own, endpointslice.kubernetes.io/
// managed-by), not by the API server. The grant to write EndpointSlices and
// ServiceImports therefore covers every one in the cluster.
// Pure data and pure functions: no I/O.

export type Verb = 'get' | 'list' | 'watch' | 'create' | 'patch' | 'update' | 'delete';

export interface Grant {
  /** API group; '' is the core group. */
  group: string;
  /** Plural resource, or resource/subresource (e.g. serviceexports/status). */
  resource: string;
  verbs: readonly Verb[];
  /** Why it is needed (docs table; a comment is not allowed inside a ClusterRole). */
  why: string;
}

const READ: readonly Verb[] = ['get', 'list', 'watch'];
/** Server-side apply is a patch, and a patch that creates needs create; stale objects are deleted; list/watch to find them. */
const OWN: readonly Verb[] = ['get', 'list', 'watch', 'create', 'patch', 'update', 'delete'];

export const MCS_GROUP = 'multicluster.x-k8s.io';

/** The agent's permissions (cluster-wide: it discovers every namespace). */
export const AGENT_GRANTS: readonly Grant[] = [
  { group: '', resource: 'services', verbs: READ, why: 'discovery: Services, their ports and the global/shared/affinity annotations' },
  { group: '', resource: 'pods', verbs: READ, why: 'discovery: labels (version subsets), service account (identity), node (zone)' },
  { group: '', resource: 'nodes', verbs: READ, why: "discovery: topology.kubernetes.io/region and zone of each endpoint's node" },
  { group: '', resource: 'namespaces', verbs: READ, why: 'discovery: namespaces that exist (and are being deleted)' },
  { group: '', resource: 'events', verbs: ['create', 'patch'], why: 'a Warning Event on an object whose annotation is malformed' },
  {
    group: 'discovery.k8s.io',
    resource: 'endpointslices',
    verbs: OWN,
    why: "read: every Service's endpoints and their ready/serving/terminating conditions; write: the EndpointSlices of imported services (only the agent's own, by label: RBAC cannot restrict by label)",
  },
  { group: MCS_GROUP, resource: 'serviceexports', verbs: READ, why: 'what is exported (the MCS API)' },
  { group: MCS_GROUP, resource: 'serviceexports/status', verbs: ['patch'], why: 'the Conflict and Valid conditions of an export' },
  { group: MCS_GROUP, resource: 'serviceimports', verbs: OWN, why: "a ServiceImport per global service this cluster imports (only the agent's own, by label: RBAC cannot restrict by label)" },
  { group: MCS_GROUP, resource: 'serviceimports/status', verbs: ['patch'], why: 'the clusters a ServiceImport has endpoints in' },
];

/** The hub's permissions: read the meshfed.io policy objects of its own cluster (GitOps) and write their status. */
export function hubGrants(crds: readonly { group: string; plural: string; hasStatus: boolean }[]): Grant[] {
  const grants: Grant[] = [];
  for (const c of crds) {
    grants.push({ group: c.group, resource: c.plural, verbs: READ, why: `policy objects from the cluster (--kubernetes-policies)` });
    if (c.hasStatus) grants.push({ group: c.group, resource: `${c.plural}/status`, verbs: ['patch'], why: 'the status the hub resolves (accepted, conflicts) written back' });
  }
  return grants;
}

export interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

/**
 * ClusterRole rules from grants: one rule per (group, verbs), resources in
 * table order, so the printed role reads like the table.
 */
export function rulesOf(grants: readonly Grant[]): PolicyRule[] {
  const rules = new Map<string, PolicyRule>();
  for (const g of grants) {
    const key = `${g.group}\u0000${g.verbs.join(',')}`;
    const r = rules.get(key);
    if (r) r.resources.push(g.resource);
    else rules.set(key, { apiGroups: [g.group], resources: [g.resource], verbs: [...g.verbs] });
  }
  return [...rules.values()];
}

/** Whether the grants allow a verb on a resource: what an RBAC authorizer would answer for these rules. */
export function grants(table: readonly Grant[], verb: string, group: string, resource: string): boolean {
  return table.some((g) => g.group === group && g.resource === resource && (g.verbs as readonly string[]).includes(verb));
}

/** The grants as a Markdown table (docs/kubernetes.md shows exactly this; a test keeps them equal). */
export function permissionsTable(table: readonly Grant[]): string {
  const rows = table.map((g) => `| \`${g.group || 'core'}\` | \`${g.resource}\` | ${g.verbs.join(', ')} | ${g.why} |`);
  return ['| API group | resource | verbs | why |', '| --- | --- | --- | --- |', ...rows].join('\n');
}
