// Authorization: may this principal do this? The composition point of the
// authorizers: the built-in rule (group "meshfed:admins" is the superuser
// group, like Kubernetes' system:masters, and may do everything) comes first;
// everything else goes to the next authorizer (the RBAC one, Role and
// RoleBinding, in src/auth/rbac.ts), or is denied with a reason when there is
// none.
//
// Invariants: one Permission per call; a denial always says what is missing;
// no I/O here.
import type { Decision, Permission, Principal } from './types.js';

export interface Authorizer {
  authorize(principal: Principal, permission: Permission): Decision | Promise<Decision>;
}

/** The superuser group: its members are allowed everything. */
export const SUPERUSER_GROUP = 'meshfed:admins';

/** The permission in words, for reasons and 403 messages: "create TrafficPolicy sample/split". */
export function describePermission(p: Permission): string {
  const object = p.name !== undefined ? (p.namespace ? `${p.namespace}/${p.name}` : p.name) : p.namespace ? `in namespace ${p.namespace}` : '';
  // A Cluster's own name is its cluster: say it once.
  const cluster = p.cluster !== undefined && !(p.kind === 'Cluster' && p.cluster === p.name) ? `in cluster ${p.cluster}` : '';
  const actions = p.actions?.length ? ` (actions ${p.actions.join(', ')})` : '';
  return [p.verb, p.kind, object, cluster].filter(Boolean).join(' ') + actions;
}

export class BuiltinAuthorizer implements Authorizer {
  constructor(private readonly next?: Authorizer) {}

  authorize(principal: Principal, permission: Permission): Decision | Promise<Decision> {
    if (principal.groups.includes(SUPERUSER_GROUP)) return { allowed: true, reason: `${principal.kind}:${principal.name} is in group ${SUPERUSER_GROUP}` };
    if (this.next) return this.next.authorize(principal, permission);
    return { allowed: false, reason: `${principal.kind}:${principal.name} may not ${describePermission(permission)}: only group ${SUPERUSER_GROUP} is authorized (no Role grants it)` };
  }
}
