// The AccessPolicy plugin. Enforced by the destination workloads' servers:
// it resolves nothing for clients; its xDS hook puts RBAC filters (xds.ts) on
// the server listener of each workload it selects, from the rules compiled in
// evaluate.ts; its status lists the workloads that enforce it and the
// identities it matches (status.ts). Pure.
import type { PolicyPlugin } from '../plugin.js';
import { compileAccess } from './evaluate.js';
import { AccessPolicyKind, type AccessPolicy } from './kind.js';
import { accessStatuses } from './status.js';
import { ACCESS_FILTER_PREFIX, accessHttpFilters } from './xds.js';

export const RBAC_HINT =
  'this gRPC server rejects RBAC filters: start it with GRPC_XDS_EXPERIMENTAL_RBAC=true (AccessPolicies or Mesh.spec.access.default DENY apply to it; until then it keeps its previous listener, or does not serve)';

export const AccessPolicyPlugin: PolicyPlugin<AccessPolicy, never> = {
  kind: AccessPolicyKind,
  enforcedBy: 'server',
  // Granting access and taking it away are separate permissions.
  actionsOf: (p) => [p.spec.action === 'DENY' ? 'deny' : 'allow'],
  status: (view, policies, env) => accessStatuses(view, policies, env.security, env.accessDefault, env.proxies),
  xds: {
    serverHttpFilters: (ctx, target, policies) => accessHttpFilters(compileAccess({ trustDomain: ctx.trustDomain, defaultAction: ctx.accessDefault, policies, endpoints: ctx.identities }, target)),
    // A deny-all default restricts every server, with or without policies.
    serverActive: (ctx, policies) => policies.length > 0 || ctx.accessDefault === 'DENY',
    serverReadsWorkloads: (policies) => policies.some((p) => p.spec.sources?.some((x) => x.labels)),
    // A gRPC server without GRPC_XDS_EXPERIMENTAL_RBAC=true NACKs a Listener naming our RBAC filters.
    nackHint: (typeUrl, message) => (typeUrl.endsWith('.Listener') && message.includes(ACCESS_FILTER_PREFIX) ? RBAC_HINT : undefined),
  },
};
