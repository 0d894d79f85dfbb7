// SPIFFE IDs of the mesh. A workload's ID names its cluster, so an access
// policy can tell `x-wing` in cluster1 from the same service account in cluster2:
//
//   spiffe://<trust domain>/cluster/<cluster>/ns/<namespace>/sa/<service account>   workload
//   spiffe://<trust domain>/cluster/<cluster>                                       the cluster's intermediate CA
//   spiffe://<trust domain>/meshfed/agent/<cluster>                                  an agent on the hub channel
//   spiffe://<trust domain>/meshfed/hub                                              the hub's channel server
//   spiffe://<trust domain>/user/<name>                                              a user's hub API client certificate
//
// A user name in an ID is letters, digits and - _ . (SPIFFE path characters), case kept.
const NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

export type SpiffeId =
  | { kind: 'workload'; trustDomain: string; cluster: string; namespace: string; serviceAccount: string }
  | { kind: 'intermediate'; trustDomain: string; cluster: string }
  | { kind: 'agent'; trustDomain: string; cluster: string }
  | { kind: 'hub'; trustDomain: string }
  | { kind: 'user'; trustDomain: string; name: string };

/** A user name that fits in a SPIFFE ID path segment. */
export const SPIFFE_USER_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

export function workloadId(trustDomain: string, cluster: string, namespace: string, serviceAccount: string): string {
  return `spiffe://${trustDomain}/cluster/${cluster}/ns/${namespace}/sa/${serviceAccount}`;
}
export function intermediateId(trustDomain: string, cluster: string): string {
  return `spiffe://${trustDomain}/cluster/${cluster}`;
}
export function agentId(trustDomain: string, cluster: string): string {
  return `spiffe://${trustDomain}/meshfed/agent/${cluster}`;
}
export function hubId(trustDomain: string): string {
  return `spiffe://${trustDomain}/meshfed/hub`;
}

export function userId(trustDomain: string, name: string): string {
  return `spiffe://${trustDomain}/user/${name}`;
}

/** Parses one of the mesh's SPIFFE IDs; undefined for anything else. */
export function parseSpiffeId(uri: string): SpiffeId | undefined {
  const m = /^spiffe:\/\/([^/]+)\/(.+)$/.exec(uri);
  if (!m || !NAME.test(m[1]!)) return undefined;
  const trustDomain = m[1]!;
  const p = m[2]!.split('/');
  if (p[0] === 'user') return p.length === 2 && SPIFFE_USER_NAME.test(p[1]!) ? { kind: 'user', trustDomain, name: p[1]! } : undefined;
  if (!p.every((s) => NAME.test(s) || /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(s))) return undefined;
  if (p.length === 2 && p[0] === 'cluster') return { kind: 'intermediate', trustDomain, cluster: p[1]! };
  if (p.length === 6 && p[0] === 'cluster' && p[2] === 'ns' && p[4] === 'sa') return { kind: 'workload', trustDomain, cluster: p[1]!, namespace: p[3]!, serviceAccount: p[5]! };
  if (p.length === 3 && p[0] === 'meshfed' && p[1] === 'agent') return { kind: 'agent', trustDomain, cluster: p[2]! };
  if (p.length === 2 && p[0] === 'meshfed' && p[1] === 'hub') return { kind: 'hub', trustDomain };
  return undefined;
}
