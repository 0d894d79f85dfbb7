// AccessPolicy's translation hook: the RBAC HTTP filters (gRFC A41; Envoy's
// envoy.extensions.filters.http.rbac.v3.RBAC) a workload's server listener
// carries before the router. Pure: compiled rules in, filters out.
//
//   meshfed.access.deny   action DENY, one policy per DENY AccessPolicy (only when there is one)
//   meshfed.access.allow  action ALLOW, one policy per ALLOW AccessPolicy; with none and a
//                         Mesh default of DENY, an ALLOW filter without policies (denies all)
//
// Neither is ever marked is_optional: gRPC silently skips an optional filter it
// cannot run (without GRPC_XDS_EXPERIMENTAL_RBAC=true), which would open the
// service. Without the variable gRPC NACKs the Listener instead: the server
// keeps its last listener (or never serves), and proxy-status says why.
import type { CompiledAccess, CompiledPolicy } from './evaluate.js';
import { anyOf } from '../../xdsapi/index.js';

export const RBAC_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC';
export const DENY_FILTER = 'meshfed.access.deny';
export const ALLOW_FILTER = 'meshfed.access.allow';
/** Names of our RBAC filters start with this (proxy-status keys its hint on it). */
export const ACCESS_FILTER_PREFIX = 'meshfed.access.';

function rbacFilter(name: string, action: 'ALLOW' | 'DENY', policies: CompiledPolicy[]): Record<string, unknown> {
  const map: Record<string, unknown> = {};
  // Keys are the policy ids without the kind: "ns/name" (unique per action).
  for (const p of policies) map[p.id.replace(/^AccessPolicy /, '')] = { permissions: p.permissions, principals: p.principals };
  // Filter names must be unique within a connection manager (gRPC NACKs duplicates).
  return { name, typed_config: anyOf(RBAC_TYPE, { rules: { action, policies: map } }) };
}

/** The HTTP filters to put before the router; empty when nothing restricts the workload. */
export function accessHttpFilters(c: CompiledAccess): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  if (c.deny.length > 0) out.push(rbacFilter(DENY_FILTER, 'DENY', c.deny));
  if (c.allow.length > 0 || c.defaultAction === 'DENY') out.push(rbacFilter(ALLOW_FILTER, 'ALLOW', c.allow));
  return out;
}
