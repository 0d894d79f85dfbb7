// The authorizer of Roles and RoleBindings (src/api/kinds/role.ts). Pure: the
// Roles and RoleBindings in, a Decision out; the caller reads them from the
// store (rbac-store.ts) and composes this with authentication
// (src/auth/authorizer.ts).
// Invariants:
//   - the group meshfed:admins is allowed everything; nobody else is allowed
//     anything no rule allows (no Role, no binding: denied);
//   - a request is allowed when ONE rule of a Role bound to the principal (its
//     user name or one of its groups) allows it whole: verb, kind, namespace,
//     cluster, name, every action the object uses, and, for selector-scoped
//     rules and a written object, every destination and source of the object;
//   - a deny reason says what is missing, from the rule that came closest;
//   - checkEscalation: a Role or RoleBinding may be written only by a principal
//     that holds every permission it would grant (nobody grants more than they hold).
import { canonicalVerb, SUPERUSER_GROUP, type Role, type RoleBinding, type RoleDestinationSelector, type RoleRule, type RoleWorkloadSelector } from '../api/kinds/role.js';
import type { Decision, Permission, Principal } from './types.js';

export { SUPERUSER_GROUP };

/** A rule a principal holds, and where it comes from. */
export interface GrantedRule {
  rule: RoleRule;
  role: string;
  /** Index of the rule in the Role's spec.rules. */
  index: number;
  binding: string;
}

// --- patterns

/** exact, '*' or a prefix 'team-*'. */
export function matchPattern(pattern: string, value: string): boolean {
  if (pattern === '*') return true;
  if (pattern.endsWith('*')) return value.startsWith(pattern.slice(0, -1));
  return pattern === value;
}

/** Whether every value `inner` matches is matched by `outer` (for escalation checks). */
export function patternCovers(outer: string, inner: string): boolean {
  if (outer === '*') return true;
  if (outer.endsWith('*')) {
    const prefix = outer.slice(0, -1);
    const innerFixed = inner.endsWith('*') ? inner.slice(0, -1) : inner;
    return inner !== '*' && innerFixed.startsWith(prefix);
  }
  return outer === inner;
}

/** An unset list (or one with '*') allows everything. */
function allowsAll(list: readonly string[] | undefined): boolean {
  return list === undefined || list.includes('*');
}

// --- who holds what

export function isSuperuser(principal: Principal): boolean {
  return principal.groups.includes(SUPERUSER_GROUP);
}

function bindsPrincipal(b: RoleBinding, principal: Principal): boolean {
  return b.spec.subjects.some((s) => (s.kind === 'User' ? principal.kind === 'user' && s.name === principal.name : principal.groups.includes(s.name)));
}

/** Every rule the principal holds through its bindings (a binding to a missing Role grants nothing). */
export function grantedRules(roles: readonly Role[], bindings: readonly RoleBinding[], principal: Principal): GrantedRule[] {
  const byName = new Map(roles.map((r) => [r.metadata.name, r]));
  const out: GrantedRule[] = [];
  for (const b of bindings) {
    if (!bindsPrincipal(b, principal)) continue;
    const role = byName.get(b.spec.roleRef);
    role?.spec.rules.forEach((rule, index) => out.push({ rule, role: role.metadata.name, index, binding: b.metadata.name }));
  }
  return out;
}

// --- what an object selects

/** A destination of a written object, as selectors see it (the object's namespace is its destinations'). */
export interface DestinationFacts {
  namespace?: string;
  name?: string;
  cluster?: string;
  labels?: Record<string, string>;
}

/** A source (caller) of a written object. */
export interface SourceFacts {
  cluster?: string;
  namespace?: string;
  serviceAccount?: string;
  labels?: Record<string, string>;
}

function record(v: unknown): Record<string, unknown> | undefined {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function labelsOf(v: unknown): Record<string, string> | undefined {
  const r = record(v);
  if (!r) return undefined;
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(r)) if (typeof x === 'string') out[k] = x;
  return out;
}

function withDefined<T extends object>(o: T): T {
  for (const k of Object.keys(o) as (keyof T)[]) if (o[k] === undefined) delete o[k];
  return o;
}

/**
 * The destinations and sources of an object (policies: spec.destinations and
 * spec.sources, in the policy's namespace). `sources` undefined: the object
 * applies to every caller; `destinations` undefined: it has none.
 */
export function objectSelects(object: unknown): { destinations?: DestinationFacts[]; sources?: SourceFacts[] } {
  const o = record(object);
  const namespace = str(record(o?.metadata)?.namespace);
  const spec = record(o?.spec);
  const out: { destinations?: DestinationFacts[]; sources?: SourceFacts[] } = {};
  if (Array.isArray(spec?.destinations)) {
    out.destinations = spec.destinations.map((d: unknown) => {
      const r = record(d);
      return withDefined({ namespace, name: str(r?.name), cluster: str(r?.cluster), labels: labelsOf(r?.labels) });
    });
  }
  if (Array.isArray(spec?.sources) && spec.sources.length > 0) {
    out.sources = spec.sources.map((s: unknown) => {
      const r = record(s);
      return withDefined({ cluster: str(r?.cluster), namespace: str(r?.namespace), serviceAccount: str(r?.serviceAccount), labels: labelsOf(r?.labels) });
    });
  }
  return out;
}

/** Whether facts (what an object selects) stay within a selector: every field the selector restricts is set to a matching value. */
function withinSelector(sel: object, facts: object): boolean {
  const have = facts as Record<string, unknown>;
  for (const [field, pattern] of Object.entries(sel)) {
    if (field === 'labels') continue;
    if (typeof pattern !== 'string' || pattern === '*') continue;
    const v = have[field];
    if (typeof v !== 'string' || !matchPattern(pattern, v)) return false;
  }
  const want = labelsOf((sel as { labels?: unknown }).labels) ?? {};
  const labels = labelsOf(have.labels) ?? {};
  for (const [k, v] of Object.entries(want)) {
    if (k === '*') {
      if (v !== '*' && !Object.values(labels).some((x) => matchPattern(v, x))) return false;
      continue;
    }
    const x = labels[k];
    if (x === undefined || !matchPattern(v, x)) return false;
  }
  return true;
}

function describeFacts(f: object): string {
  const parts = Object.entries(f).map(([k, v]) => `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`);
  return parts.length ? `{${parts.join(', ')}}` : '{} (everything)';
}

// --- authorize

export function describePrincipal(p: Principal): string {
  return `${p.kind} ${p.name}`;
}

export function describePermission(perm: Permission): string {
  const verb = canonicalVerb(perm.verb);
  let s = `${verb} ${perm.kind}`;
  if (perm.name) s += ` "${perm.name}"`;
  if (perm.namespace) s += ` in namespace ${perm.namespace}`;
  if (perm.cluster) s += ` in cluster ${perm.cluster}`;
  return s;
}

/** The cluster a permission is about: its own, or a Cluster object's (or join token's) name. */
function clusterOf(perm: Permission): string | undefined {
  return perm.cluster ?? (perm.kind === 'Cluster' ? perm.name : undefined);
}

// How far a rule got before it failed; the closest rule explains the denial.
const Stage = { Verb: 0, Scope: 1, Actions: 2, Destinations: 3, Sources: 4, Object: 5 } as const;

interface Miss {
  stage: number;
  why: string;
}

/** Undefined when the rule allows the permission whole, else where it fell short. */
export function ruleMiss(rule: RoleRule, perm: Permission, question = false): Miss | undefined {
  const verb = canonicalVerb(perm.verb);
  if (!rule.verbs.some((v) => v === '*' || v === verb)) return { stage: Stage.Verb, why: 'no role allows it' };
  if (!rule.kinds.some((k) => matchPattern(k, perm.kind))) return { stage: Stage.Verb, why: 'no role allows it' };
  const scoped = (list: readonly string[] | undefined, value: string | undefined): boolean => allowsAll(list) || (value !== undefined && list!.some((p) => matchPattern(p, value)));
  if (!scoped(rule.namespaces, perm.namespace) || !scoped(rule.clusters, clusterOf(perm)) || !scoped(rule.names, perm.name)) {
    return { stage: Stage.Scope, why: 'no role allows it' };
  }
  if (!allowsAll(rule.actions)) {
    const missing = (perm.actions ?? []).filter((a) => !rule.actions!.includes(a));
    if (missing.length) return { stage: Stage.Actions, why: `no role allows action ${missing.join(', ')}` };
  }
  if (!rule.destinations && !rule.workloads) return undefined;
  if (perm.object === undefined) {
    // Reads and dry runs without an object are scoped by namespace, cluster and name only; a write must show what it
    // selects (a question, can-i, is answered for some object within the selectors).
    if (!question && (verb === 'create' || verb === 'update' || verb === 'delete')) {
      return { stage: Stage.Object, why: 'its roles allow it only for some destinations or sources, and the request carries no object to check' };
    }
    return undefined;
  }
  const sel = objectSelects(perm.object);
  if (rule.destinations) {
    const outside = (sel.destinations ?? []).find((d) => !rule.destinations!.some((s: RoleDestinationSelector) => withinSelector(s, d)));
    if (outside) return { stage: Stage.Destinations, why: `destination ${describeFacts(outside)} is outside the destinations its roles allow` };
  }
  if (rule.workloads) {
    // No sources: the object applies to every caller, which only an unrestricted selector allows.
    const sources = sel.sources ?? [{}];
    const outside = sources.find((s) => !rule.workloads!.some((w: RoleWorkloadSelector) => withinSelector(w, s)));
    if (outside) return { stage: Stage.Sources, why: `source ${describeFacts(outside)} is outside the workloads its roles allow` };
  }
  return undefined;
}

/**
 * May `principal` do `perm`? Allowed reasons name the Role and RoleBinding;
 * denials say what is missing. `question` (can-i): a write without an object
 * is allowed by a selector-scoped rule, for objects within its selectors (the
 * reason says so); a request to the API never sets it.
 */
export function authorize(roles: readonly Role[], bindings: readonly RoleBinding[], principal: Principal, perm: Permission, question = false): Decision {
  if (isSuperuser(principal)) return { allowed: true, reason: `${describePrincipal(principal)} is in group ${SUPERUSER_GROUP}` };
  const granted = grantedRules(roles, bindings, principal);
  let closest: Miss | undefined;
  for (const g of granted) {
    const miss = ruleMiss(g.rule, perm, question);
    if (!miss) {
      const only = perm.object === undefined && (g.rule.destinations || g.rule.workloads) ? ', only for objects within its destination and workload selectors' : '';
      return { allowed: true, reason: `allowed by Role ${g.role} (rule ${g.index}) through RoleBinding ${g.binding}${only}` };
    }
    if (!closest || miss.stage > closest.stage) closest = miss;
  }
  const why = closest?.why ?? (granted.length ? 'no role allows it' : 'no role allows it (no RoleBinding names it or its groups)');
  return { allowed: false, reason: `${describePrincipal(principal)} may not ${describePermission(perm)}: ${why}` };
}

// --- escalation

/** Whether one held rule allows everything `want` (one verb, one kind) allows. */
function ruleCovers(held: RoleRule, want: RoleRule): boolean {
  const list = (h: readonly string[] | undefined, w: readonly string[] | undefined): boolean =>
    allowsAll(h) || (w !== undefined && !w.includes('*') && w.every((x) => h!.some((p) => patternCovers(p, x))));
  if (!want.verbs.every((v) => held.verbs.includes('*') || held.verbs.includes(v))) return false;
  if (!want.kinds.every((k) => held.kinds.some((p) => patternCovers(p, k)))) return false;
  if (!list(held.namespaces, want.namespaces) || !list(held.clusters, want.clusters) || !list(held.names, want.names)) return false;
  if (!allowsAll(held.actions) && (allowsAll(want.actions) || !want.actions!.every((a) => held.actions!.includes(a)))) return false;
  if (held.destinations && !(want.destinations && want.destinations.every((w) => held.destinations!.some((h) => selectorCovers(h, w))))) return false;
  if (held.workloads && !(want.workloads && want.workloads.every((w) => held.workloads!.some((h) => selectorCovers(h, w))))) return false;
  return true;
}

/** Whether everything selector `inner` admits is admitted by `outer`. */
function selectorCovers(outer: Record<string, unknown>, inner: Record<string, unknown>): boolean {
  for (const [field, pattern] of Object.entries(outer)) {
    if (field === 'labels' || typeof pattern !== 'string' || pattern === '*') continue;
    const v = inner[field];
    if (typeof v !== 'string' || !patternCovers(pattern, v)) return false;
  }
  const want = labelsOf(outer.labels) ?? {};
  const have = labelsOf(inner.labels) ?? {};
  for (const [k, v] of Object.entries(want)) {
    if (k === '*' && v === '*') continue;
    if (k === '*') {
      if (!Object.values(have).some((x) => patternCovers(v, x))) return false;
      continue;
    }
    const x = have[k];
    if (x === undefined || !patternCovers(v, x)) return false;
  }
  return true;
}

/** Whether the principal holds every permission `rule` allows (each verb and kind by some one held rule). */
export function holdsRule(granted: readonly GrantedRule[], rule: RoleRule): boolean {
  for (const verb of rule.verbs) {
    for (const kind of rule.kinds) {
      const atom: RoleRule = { ...rule, verbs: [verb], kinds: [kind] };
      if (!granted.some((g) => ruleCovers(g.rule, atom))) return false;
    }
  }
  return true;
}

function describeRule(r: RoleRule): string {
  const parts = [`${r.verbs.join(',')} ${r.kinds.join(',')}`];
  if (r.namespaces) parts.push(`namespaces ${r.namespaces.join(',')}`);
  if (r.clusters) parts.push(`clusters ${r.clusters.join(',')}`);
  if (r.names) parts.push(`names ${r.names.join(',')}`);
  if (r.actions) parts.push(`actions ${r.actions.join(',')}`);
  if (r.destinations) parts.push(`destinations ${r.destinations.map(describeFacts).join(',')}`);
  if (r.workloads) parts.push(`workloads ${r.workloads.map(describeFacts).join(',')}`);
  return parts.join(', ');
}

/**
 * May `principal` write this Role or RoleBinding without escalating? A Role's
 * rules, or the rules of the Role a binding refers to, must all be held by the
 * principal already (`roles` and `bindings`: the current ones, before the
 * write). A binding to a Role that does not exist is refused (it would grant
 * whatever that Role later says), except to the superuser group.
 * The plain permission to create or update Roles is authorize()'s question.
 */
export function checkEscalation(roles: readonly Role[], bindings: readonly RoleBinding[], principal: Principal, object: Role | RoleBinding): Decision {
  const who = describePrincipal(principal);
  if (isSuperuser(principal)) return { allowed: true, reason: `${who} is in group ${SUPERUSER_GROUP}` };
  let rules: readonly RoleRule[];
  let what: string;
  if (object.kind === 'Role') {
    rules = object.spec.rules;
    what = `Role ${object.metadata.name}`;
  } else {
    const role = roles.find((r) => r.metadata.name === object.spec.roleRef);
    if (!role)
      return {
        allowed: false,
        reason: `${who} may not bind Role ${object.spec.roleRef} in RoleBinding ${object.metadata.name}: the Role does not exist (only ${SUPERUSER_GROUP} may bind it before it does)`,
      };
    rules = role.spec.rules;
    what = `Role ${role.metadata.name} (through RoleBinding ${object.metadata.name})`;
  }
  const granted = grantedRules(roles, bindings, principal);
  for (let i = 0; i < rules.length; i++) {
    const rule = rules[i]!;
    if (!holdsRule(granted, rule)) {
      return { allowed: false, reason: `${who} may not grant ${what} rule ${i} (${describeRule(rule)}): it does not hold that permission itself` };
    }
  }
  return { allowed: true, reason: `${who} holds every rule of ${what}` };
}
