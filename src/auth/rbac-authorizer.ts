// The RBAC authorizer over the hub's store: Roles and RoleBindings read at the
// store's current revision for every question (src/auth/rbac-store.ts, no
// copy), decided by the pure rules of src/auth/rbac.ts. It is the `next` of the
// BuiltinAuthorizer (src/auth/authorizer.ts), which answers for the superuser
// group first. Write requests additionally pass authorizeWrites (updates ask
// for the stored object too; Roles and RoleBindings are checked for
// escalation).
import type { Store } from '../store/store.js';
import type { Authorizer } from './authorizer.js';
import { authorize } from './rbac.js';
import { readRbac } from './rbac-store.js';
import { authorizeWrites, type Write } from './rbac-writes.js';
import type { Decision, Permission, Principal } from './types.js';

export class RbacAuthorizer implements Authorizer {
  constructor(private readonly store: Store) {}

  authorize(principal: Principal, permission: Permission): Decision {
    const rbac = readRbac(this.store);
    return authorize(rbac.roles, rbac.bindings, principal, permission);
  }

  /** A whole write request: every object's permissions and no escalation through Roles or RoleBindings. */
  authorizeWrites(principal: Principal, writes: readonly Write[]): Decision & { denied?: Permission } {
    return authorizeWrites(readRbac(this.store), principal, writes);
  }
}
