// The Roles and RoleBindings the authorizer (rbac.ts) reads, taken from the
// store in one scan each at the store's current revision: the router asks per
// request, so this never copies (callers must not modify what they get).
import type { Role, RoleBinding } from '../api/kinds/role.js';
import type { Store } from '../store/store.js';

export interface RbacObjects {
  roles: readonly Role[];
  bindings: readonly RoleBinding[];
}

export function readRbac(store: Store): RbacObjects {
  return {
    roles: store.scan({ kind: 'Role' }).objects as readonly Role[],
    bindings: store.scan({ kind: 'RoleBinding' }).objects as readonly RoleBinding[],
  };
}
