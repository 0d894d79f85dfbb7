// Role and RoleBinding: who may do what at the hub (the Gloo Mesh RBAC model).
// A Role is a list of rules; each rule allows some verbs on some kinds, within
// namespaces, clusters and names (exact, '*' or a prefix 'team-*'), for the
// finer actions it lists (a TrafficPolicy that injects faults uses action
// 'fault-injection'), and for selector-scoped rules only for objects whose
// destinations and sources stay within its selectors. A RoleBinding grants one
// Role's rules to users and groups. Both are cluster-scoped objects at the hub.
// Invariants: the schema and validateObject reject every rule that could never
// mean what it says (an unknown verb, an operation verb on a kind it does not
// apply to); the authorizer (src/auth/rbac.ts) trusts a validated Role.
import { Type, type Static } from '@sinclair/typebox';
import type { FieldError } from '../kind.js';
import { defineKind } from '../kind.js';
import { Name } from '../meta.js';

/** Verbs on objects. `watch`, `get` and `list` are asked as `read`. */
export const OBJECT_VERBS = ['read', 'create', 'update', 'delete'] as const;

/**
 * Hub operations are verbs on a (pseudo-)kind. Operation verb -> the kinds it
 * applies to (undefined: every kind, e.g. plan and explain of a policy kind).
 */
export const OPERATION_VERBS: Readonly<Record<string, readonly string[] | undefined>> = {
  'mint-join-token': ['Cluster'],
  'rotate-root': ['Trust'],
  gc: ['Hub'],
  'mint-identity-token': ['Identity'],
  plan: undefined,
  explain: undefined,
};

/** Kinds that are no API object: areas of hub operations (Trust status and rotation, the audit log, the hub process, workload identities). */
export const PSEUDO_KINDS = ['Trust', 'Audit', 'Hub', 'Identity'] as const;

/** Every verb a rule may list. */
export const RULE_VERBS: readonly string[] = ['*', ...OBJECT_VERBS, ...Object.keys(OPERATION_VERBS)];

/** Verbs asked under another name: a watch (and a get or list) is a read. */
export function canonicalVerb(verb: string): string {
  return verb === 'watch' || verb === 'get' || verb === 'list' ? 'read' : verb;
}

/** The superuser group: allowed everything, with or without Roles (the first admin credential carries it). */
export const SUPERUSER_GROUP = 'meshfed:admins';

/** exact, '*' (anything) or a prefix ending in '*' ('team-*'). */
export const PATTERN = '^(\\*|[A-Za-z0-9][-A-Za-z0-9._]*\\*?)$';
const Pattern = Type.String({
  pattern: PATTERN,
  patternMessage: "must be an exact value (letters, digits, '-', '.' and '_'), '*' (any) or a prefix ending in '*' (team-*)",
  minLength: 1,
  maxLength: 253,
  description: "exact value, '*' (any) or a prefix ending in '*' (team-*)",
});
const Patterns = (description: string) => Type.Array(Pattern, { minItems: 1, maxItems: 256, description });
const LabelPatterns = Type.Record(Type.String({ minLength: 1, maxLength: 63 }), Type.String({ minLength: 1, maxLength: 63 }), {
  description: "label key -> value pattern; {'*': '*'} is any labels",
});

/** Services a written policy's destinations must stay within; every set field must match. */
export const RoleDestinationSelector = Type.Object(
  {
    namespace: Type.Optional(Pattern),
    name: Type.Optional(Pattern),
    cluster: Type.Optional(Pattern),
    labels: Type.Optional(LabelPatterns),
  },
  { additionalProperties: false, description: 'a destination of the policy is within this selector when it sets every field the selector restricts, to a matching value' },
);
export type RoleDestinationSelector = Static<typeof RoleDestinationSelector>;

/** Callers (a policy's sources) a written policy must stay within; every set field must match. */
export const RoleWorkloadSelector = Type.Object(
  {
    cluster: Type.Optional(Pattern),
    namespace: Type.Optional(Pattern),
    serviceAccount: Type.Optional(Pattern),
    labels: Type.Optional(LabelPatterns),
  },
  { additionalProperties: false, description: 'a source of the policy is within this selector when it sets every field the selector restricts, to a matching value' },
);
export type RoleWorkloadSelector = Static<typeof RoleWorkloadSelector>;

export const RoleRule = Type.Object(
  {
    kinds: Type.Array(Pattern, { minItems: 1, maxItems: 64, description: "kinds (TrafficPolicy, Cluster, Trust, Audit, Hub, Identity...) or '*'" }),
    verbs: Type.Array(Type.String({ minLength: 1, maxLength: 63 }), { minItems: 1, maxItems: 32, description: `${RULE_VERBS.join(', ')}` }),
    namespaces: Type.Optional(Patterns('only objects in these namespaces; unset: every namespace and cluster-scoped objects')),
    clusters: Type.Optional(Patterns("only objects of these clusters (a Cluster's own name, a discovered object's cluster); unset: every cluster")),
    names: Type.Optional(Patterns('only objects with these names; unset: every name')),
    actions: Type.Optional(
      Type.Array(Type.String({ pattern: '^(\\*|[a-z][-a-z]*)$', patternMessage: "must be '*' or an action: lowercase letters and '-', starting with a letter", maxLength: 63 }), {
        minItems: 1,
        maxItems: 64,
        description:
          'finer actions the object may use (TrafficPolicy: traffic-shift, fault-injection, retries, timeouts, load-balancing, outlier-detection; FailoverPolicy: failover; AccessPolicy: allow, deny); unset: any',
      }),
    ),
    destinations: Type.Optional(Type.Array(RoleDestinationSelector, { minItems: 1, maxItems: 256, description: 'writes only: every destination of the object must be within one of these' })),
    workloads: Type.Optional(Type.Array(RoleWorkloadSelector, { minItems: 1, maxItems: 256, description: 'writes only: every source of the object must be within one of these' })),
  },
  { additionalProperties: false },
);
export type RoleRule = Static<typeof RoleRule>;

export const RoleSpec = Type.Object(
  {
    description: Type.Optional(Type.String({ maxLength: 1024 })),
    rules: Type.Array(RoleRule, { minItems: 1, maxItems: 256, description: 'a request is allowed when one rule allows it whole' }),
  },
  { additionalProperties: false },
);
export type RoleSpec = Static<typeof RoleSpec>;

const NoStatus = Type.Object({});

export const RoleKind = defineKind({
  kind: 'Role',
  plural: 'roles',
  namespaced: false,
  discovered: false,
  spec: RoleSpec,
  status: NoStatus,
  columns: [
    { header: 'RULES', value: (o) => String(o.spec.rules.length) },
    { header: 'KINDS', value: (o) => [...new Set(o.spec.rules.flatMap((r) => r.kinds))].join(',') },
    { header: 'VERBS', value: (o) => [...new Set(o.spec.rules.flatMap((r) => r.verbs))].join(',') },
  ],
  validateObject: (o) => [...notNamespaced(o.kind, o.metadata.namespace), ...validateRoleSpec(o.spec)],
});
export type Role = typeof RoleKind.$object;

export const Subject = Type.Object(
  {
    kind: Type.Union([Type.Literal('User'), Type.Literal('Group')], { description: 'User (a credential name) or Group (a group a credential carries)' }),
    name: Type.String({ minLength: 1, maxLength: 253 }),
  },
  { additionalProperties: false },
);
export type Subject = Static<typeof Subject>;

export const RoleBindingSpec = Type.Object(
  {
    roleRef: { ...Name, description: 'the Role whose rules are granted' },
    subjects: Type.Array(Subject, { minItems: 1, maxItems: 1024 }),
  },
  { additionalProperties: false },
);
export type RoleBindingSpec = Static<typeof RoleBindingSpec>;

export const RoleBindingKind = defineKind({
  kind: 'RoleBinding',
  plural: 'rolebindings',
  shortNames: ['rb'],
  namespaced: false,
  discovered: false,
  spec: RoleBindingSpec,
  status: NoStatus,
  columns: [
    { header: 'ROLE', value: (o) => o.spec.roleRef },
    { header: 'SUBJECTS', value: (o) => o.spec.subjects.map((s) => `${s.kind}:${s.name}`).join(',') },
  ],
  validateObject: (o) => [...notNamespaced(o.kind, o.metadata.namespace), ...validateRoleBindingSpec(o.spec)],
});
export type RoleBinding = typeof RoleBindingKind.$object;

function notNamespaced(kind: string, namespace: string | undefined): FieldError[] {
  return namespace ? [{ path: '/metadata/namespace', message: `${kind} is not namespaced` }] : [];
}

/** Rules the schema cannot say. Each error names the field. */
export function validateRoleSpec(spec: RoleSpec): FieldError[] {
  const errs: FieldError[] = [];
  spec.rules.forEach((r, i) => {
    const p = `/spec/rules/${i}`;
    r.verbs.forEach((v, j) => {
      if (!RULE_VERBS.includes(v)) {
        const hint = v === 'watch' || v === 'get' || v === 'list' ? ` (${v} is asked as read: list read)` : '';
        errs.push({ path: `${p}/verbs/${j}`, message: `unknown verb "${v}"${hint}; one of ${RULE_VERBS.join(', ')}` });
        return;
      }
      const only = OPERATION_VERBS[v];
      if (only && !r.kinds.some((k) => k === '*' || only.includes(k))) {
        errs.push({ path: `${p}/verbs/${j}`, message: `verb "${v}" applies to kind ${only.join(', ')} only, and kinds lists none of it` });
      }
    });
    duplicates(r.verbs, `${p}/verbs`, errs);
    duplicates(r.kinds, `${p}/kinds`, errs);
    duplicates(r.actions ?? [], `${p}/actions`, errs);
  });
  return errs;
}

export function validateRoleBindingSpec(spec: RoleBindingSpec): FieldError[] {
  const errs: FieldError[] = [];
  const seen = new Set<string>();
  spec.subjects.forEach((s, i) => {
    const k = `${s.kind}:${s.name}`;
    if (seen.has(k)) errs.push({ path: `/spec/subjects/${i}`, message: `subject ${s.kind} "${s.name}" is listed twice` });
    seen.add(k);
  });
  return errs;
}

function duplicates(values: readonly string[], path: string, errs: FieldError[]): void {
  const seen = new Set<string>();
  values.forEach((v, j) => {
    if (seen.has(v)) errs.push({ path: `${path}/${j}`, message: `"${v}" is listed twice` });
    seen.add(v);
  });
}
