// Authorizes one write request (apply, delete) whole, as the router asks it:
// every object's Permission (permissions.ts; an update also the stored object
// it replaces) and, for Roles and RoleBindings created or updated, the
// escalation check (rbac.ts). All allowed, or the first denial: nothing of a
// request is written unless every part of it is allowed. Pure.
// Invariant: held permissions are the principal's before the write; a
// RoleBinding may refer to a Role written in the same request (whose rules are
// then checked as that Role's own).
import type { ApiObject } from '../api/index.js';
import type { Role, RoleBinding } from '../api/kinds/role.js';
import { permissionsFor } from './permissions.js';
import { authorize, checkEscalation } from './rbac.js';
import type { RbacObjects } from './rbac-store.js';
import type { Decision, Permission, Principal } from './types.js';

export interface Write {
  verb: 'create' | 'update' | 'delete';
  /** The object written (for delete: the stored object). */
  object: ApiObject;
  /** For update: the stored object it replaces. */
  previous?: ApiObject;
}

/** The first denial among the writes, or allowed; `denied` is the Permission refused (for the audit log). */
export function authorizeWrites(rbac: RbacObjects, principal: Principal, writes: readonly Write[]): Decision & { denied?: Permission } {
  const written = writes.filter((w) => w.verb !== 'delete' && w.object.kind === 'Role').map((w) => w.object as Role);
  const rolesAfter = [...written, ...rbac.roles.filter((r) => !written.some((w) => w.metadata.name === r.metadata.name))];
  for (const w of writes) {
    for (const perm of permissionsFor(w.verb, w.object, w.previous)) {
      const d = authorize(rbac.roles, rbac.bindings, principal, perm);
      if (!d.allowed) return { ...d, denied: perm };
    }
    if (w.verb === 'delete' || (w.object.kind !== 'Role' && w.object.kind !== 'RoleBinding')) continue;
    // A binding grants the Role it names as the request leaves it; what is held is what the principal holds now.
    const target = w.object as Role | RoleBinding;
    const d = target.kind === 'RoleBinding' ? checkBinding(rbac, rolesAfter, principal, target) : checkEscalation(rbac.roles, rbac.bindings, principal, target);
    if (!d.allowed) return { ...d, denied: { verb: w.verb, kind: target.kind, name: target.metadata.name, object: target } };
  }
  return { allowed: true, reason: `${writes.length} write${writes.length === 1 ? '' : 's'} allowed` };
}

function checkBinding(rbac: RbacObjects, rolesAfter: readonly Role[], principal: Principal, binding: RoleBinding): Decision {
  // Only the bound Role's rules are looked up in rolesAfter; held rules come from the current Roles and bindings.
  const role = rolesAfter.find((r) => r.metadata.name === binding.spec.roleRef);
  const current = rbac.roles.find((r) => r.metadata.name === binding.spec.roleRef);
  if (!role || role === current) return checkEscalation(rbac.roles, rbac.bindings, principal, binding);
  // The Role is written in this request: holding its rules is what binding it needs.
  const asRole = checkEscalation(rbac.roles, rbac.bindings, principal, role);
  return asRole.allowed ? { allowed: true, reason: asRole.reason.replace(`Role ${role.metadata.name}`, `Role ${role.metadata.name} (through RoleBinding ${binding.metadata.name})`) } : asRole;
}
