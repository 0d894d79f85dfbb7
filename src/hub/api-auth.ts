// The hub API's authorization questions, apart from HTTP: `meshfed auth can-i`
// (POST /api/v1alpha1/auth/can-i). Answers for the calling principal only,
// from the store's current Roles and RoleBindings; never writes. A malformed
// question is a MeshfedError 'invalid' naming the field.
//   {verb, kind, name?, namespace?, cluster?, actions?}  -> {allowed, reason, permission}
//   {list: true}                                          -> {user, groups, superuser, rules}
import { canonicalVerb, PSEUDO_KINDS, RULE_VERBS, type RoleRule } from '../api/kinds/role.js';
import { authorize, grantedRules, isSuperuser } from '../auth/rbac.js';
import { readRbac } from '../auth/rbac-store.js';
import type { Permission, Principal } from '../auth/types.js';
import type { Store } from '../store/store.js';
import { MeshfedError } from '../util/errors.js';
import { findKind } from '../registry.js';

export interface CanIAnswer {
  allowed: boolean;
  reason: string;
  /** The question as the authorizer saw it (kind resolved, verb canonical). */
  permission: Omit<Permission, 'object'>;
}

export interface CanIListAnswer {
  user: string;
  groups: string[];
  /** In the superuser group: allowed everything, whatever the rules say. */
  superuser: boolean;
  rules: (RoleRule & { role: string; rule: number; binding: string })[];
}

/** POST /api/v1alpha1/auth/can-i: may the caller do this (or, with `list`, what may it do)? */
export async function canIAnswer(store: Store, principal: Principal, body: unknown): Promise<CanIAnswer | CanIListAnswer> {
  const q = body !== null && typeof body === 'object' && !Array.isArray(body) ? (body as Record<string, unknown>) : undefined;
  if (!q) throw new MeshfedError('invalid', 'request body must be a JSON object: {verb, kind, name?, namespace?, cluster?, actions?} or {list: true}');
  const { roles, bindings } = readRbac(store);
  if (q.list !== undefined) {
    if (q.list !== true) throw new MeshfedError('invalid', 'list: must be true');
    return {
      user: principal.name,
      groups: principal.groups,
      superuser: isSuperuser(principal),
      rules: grantedRules(roles, bindings, principal).map((g) => ({ role: g.role, rule: g.index, binding: g.binding, ...g.rule })),
    };
  }
  const permission = parseQuestion(q);
  return { ...authorize(roles, bindings, principal, permission, true), permission };
}

function parseQuestion(q: Record<string, unknown>): Permission {
  if (typeof q.verb !== 'string' || !q.verb) throw new MeshfedError('invalid', 'verb: required (read, create, update, delete or a hub operation)');
  const verb = canonicalVerb(q.verb);
  if (verb === '*' || !RULE_VERBS.includes(verb)) throw new MeshfedError('invalid', `verb: unknown verb "${q.verb}"; one of ${RULE_VERBS.filter((v) => v !== '*').join(', ')}, watch`);
  if (typeof q.kind !== 'string' || !q.kind) throw new MeshfedError('invalid', 'kind: required (a kind, plural or short name, or Trust, Audit, Hub, Identity)');
  const perm: Permission = { verb, kind: resolveKind(q.kind) };
  for (const field of ['name', 'namespace', 'cluster'] as const) {
    const v = q[field];
    if (v === undefined) continue;
    if (typeof v !== 'string' || !v || v.length > 253) throw new MeshfedError('invalid', `${field}: must be a non-empty string of at most 253 characters`);
    perm[field] = v;
  }
  if (q.actions !== undefined) {
    if (!Array.isArray(q.actions) || q.actions.length > 64 || !q.actions.every((a): a is string => typeof a === 'string' && a.length > 0 && a.length <= 63)) {
      throw new MeshfedError('invalid', 'actions: must be a list of at most 64 action names');
    }
    if (q.actions.length) perm.actions = q.actions;
  }
  return perm;
}

/** A kind's name, plural or short name, or a pseudo-kind (case-insensitive). */
function resolveKind(name: string): string {
  const def = findKind(name);
  if (def) return def.kind;
  const pseudo = PSEUDO_KINDS.find((k) => k.toLowerCase() === name.toLowerCase());
  if (pseudo) return pseudo;
  throw new MeshfedError('invalid', `kind: unknown kind "${name}" (an API kind, or one of ${PSEUDO_KINDS.join(', ')})`, { reason: 'UnknownKind' });
}
