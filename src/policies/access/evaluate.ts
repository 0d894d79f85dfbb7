// Which AccessPolicies a destination workload enforces, compiled into the RBAC
// rules its server gets (xds.ts turns them into filters), and the evaluation of
// one call against those very rules (what `meshfed explain` reports). Pure.
//
// The rule, per call to a workload:
//   1. a DENY policy that matches the call (source and destination) denies it;
//   2. otherwise, when ALLOW policies select the workload, the call is allowed
//      only if one of them matches it;
//   3. otherwise the Mesh default decides (Mesh.spec.access.default, ALLOW).
//
// Identities are URI SANs of client certificates, so they exist only over mTLS
// (STRICT). In PERMISSIVE/DISABLE callers arrive without one: ALLOW sources
// by identity match nothing, and a DENY policy with sources denies every caller
// without an identity too (it could be any of the denied ones: fail closed).
import type { MtlsMode } from '../../api/index.js';
import { workloadId } from '../../ca/spiffe.js';
import type { AccessAction, AccessDestination, AccessPolicy, AccessSource } from './kind.js';
import type { ServerTarget, WorkloadIdentityRef } from '../plugin.js';

/** A workload's server listener: what policies are matched against (the contract's ServerTarget). */
export type AccessTarget = ServerTarget;

/** A workload as label sources see it. */
export type IdentityEndpoint = WorkloadIdentityRef;

export interface AccessEnv {
  trustDomain: string;
  defaultAction: AccessAction;
  /** Every AccessPolicy, oldest first. */
  policies: readonly AccessPolicy[];
  /** Every known workload (for label sources); called only when a policy has one. */
  endpoints: () => Iterable<IdentityEndpoint>;
}

// RBAC rules in the xDS (protobufjs fromObject) shape, the subset we generate.
export type StringMatcher = { exact: string } | { prefix: string } | { safe_regex: { regex: string } };
export type Principal = { any: true } | { authenticated: { principal_name?: StringMatcher } } | { or_ids: { ids: Principal[] } } | { not_id: Principal };
export type Permission = { any: true } | { url_path: { path: StringMatcher } } | { or_rules: { rules: Permission[] } };

export interface CompiledPolicy {
  /** "AccessPolicy ns/name" */
  id: string;
  action: AccessAction;
  /** Indexes of spec.destinations that select the target; permissions[i] belongs to destinations[i]. */
  destinations: number[];
  permissions: Permission[];
  /** principals[i] belongs to spec.sources[i]; a last extra one is the fail-closed "no identity" principal. */
  principals: Principal[];
  /** Human forms of the principals, same order. */
  sourceText: string[];
  /** "sources[i]" for the principals that come from spec.sources, else "". */
  sourceRefs: string[];
  methodText: string[];
}

export interface CompiledAccess {
  target: AccessTarget;
  deny: CompiledPolicy[];
  allow: CompiledPolicy[];
  defaultAction: AccessAction;
}

export function accessPolicyId(p: { metadata: { name: string; namespace?: string } }): string {
  return `AccessPolicy ${p.metadata.namespace ?? ''}/${p.metadata.name}`;
}

/** Whether a destination entry selects the target (namespace checked by the caller). */
export function destinationSelects(d: AccessDestination, t: AccessTarget): boolean {
  if (d.name !== undefined && d.name !== t.service) return false;
  if (d.cluster !== undefined && d.cluster !== t.cluster) return false;
  if (d.labels && !Object.entries(d.labels).every(([k, v]) => t.serviceLabels[k] === v)) return false;
  if (d.ports && !t.ports.some((p) => d.ports!.some((x) => x === p.port || x === p.name))) return false;
  return true;
}

/** Indexes of the policy's destinations that select the target. */
export function selectingDestinations(p: AccessPolicy, t: AccessTarget): number[] {
  if (p.metadata.namespace !== t.namespace) return [];
  const out: number[] = [];
  p.spec.destinations.forEach((d, i) => {
    if (destinationSelects(d, t)) out.push(i);
  });
  return out;
}

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * Matcher on the URI SAN for a source without labels: exact when every part is
 * set, a prefix when only trailing parts are missing, a regex otherwise.
 */
export function identityMatcher(td: string, s: Pick<AccessSource, 'cluster' | 'namespace' | 'serviceAccount'>): StringMatcher {
  if (s.cluster !== undefined && s.namespace !== undefined && s.serviceAccount !== undefined) return { exact: workloadId(td, s.cluster, s.namespace, s.serviceAccount) };
  const base = `spiffe://${td}/cluster/`;
  if (s.serviceAccount === undefined) {
    if (s.namespace === undefined) return { prefix: s.cluster === undefined ? base : `${base}${s.cluster}/ns/` };
    if (s.cluster !== undefined) return { prefix: `${base}${s.cluster}/ns/${s.namespace}/sa/` };
  }
  const any = '[^/]+';
  const part = (v: string | undefined) => (v === undefined ? any : esc(v));
  return { safe_regex: { regex: `${esc(base)}${part(s.cluster)}/ns/${part(s.namespace)}/sa/${part(s.serviceAccount)}` } };
}

/** Identities of the known workloads a label source selects, sorted. */
export function labelIdentities(env: Pick<AccessEnv, 'trustDomain' | 'endpoints'>, s: AccessSource): string[] {
  const ids = new Set<string>();
  for (const e of env.endpoints()) {
    if (s.cluster !== undefined && e.cluster !== s.cluster) continue;
    if (s.namespace !== undefined && e.namespace !== s.namespace) continue;
    if (s.serviceAccount !== undefined && e.serviceAccount !== s.serviceAccount) continue;
    if (!Object.entries(s.labels ?? {}).every(([k, v]) => e.labels[k] === v)) continue;
    ids.add(workloadId(env.trustDomain, e.cluster, e.namespace, e.serviceAccount));
  }
  return [...ids].sort();
}

/** Human form of a matcher: the identity, or the pattern with * for "any". */
export function matcherText(m: StringMatcher): string {
  if ('exact' in m) return m.exact;
  if ('prefix' in m) return `${m.prefix}*`;
  return m.safe_regex.regex.replace(/\[\^\/\]\+/g, '*').replace(/\\(.)/g, '$1');
}

const NO_IDENTITY: Principal = { not_id: { authenticated: {} } };
const NOTHING: Principal = { not_id: { any: true } };

function compileSource(env: Pick<AccessEnv, 'trustDomain' | 'endpoints'>, s: AccessSource): { principal: Principal; text: string } {
  if (s.labels) {
    const ids = labelIdentities(env, s);
    if (ids.length === 0) return { principal: NOTHING, text: `no workload with labels ${JSON.stringify(s.labels)} (matches no caller)` };
    return { principal: { or_ids: { ids: ids.map((id) => ({ authenticated: { principal_name: { exact: id } } })) } }, text: ids.join(', ') };
  }
  const m = identityMatcher(env.trustDomain, s);
  return { principal: { authenticated: { principal_name: m } }, text: matcherText(m) };
}

function compileDestination(d: AccessDestination): { permission: Permission; text: string } {
  const rules: Permission[] = [];
  const text: string[] = [];
  for (const m of d.methods ?? []) {
    const [svc, method] = m.split('/') as [string, string];
    rules.push({ url_path: { path: method === '*' ? { prefix: `/${svc}/` } : { exact: `/${svc}/${method}` } } });
    text.push(`/${m}`);
  }
  for (const p of d.paths ?? []) {
    rules.push({ url_path: { path: p.exact !== undefined ? { exact: p.exact } : { prefix: p.prefix! } } });
    text.push(p.exact ?? `${p.prefix}*`);
  }
  if (rules.length === 0) return { permission: { any: true }, text: 'every method' };
  return { permission: rules.length === 1 ? rules[0]! : { or_rules: { rules } }, text: text.join(', ') };
}

/** The principals of a policy's sources (plus the fail-closed one for DENY when the target is not STRICT). */
export function compileSources(
  env: Pick<AccessEnv, 'trustDomain' | 'endpoints'>,
  p: AccessPolicy,
  target: Pick<AccessTarget, 'mode' | 'service' | 'namespace'>,
): Pick<CompiledPolicy, 'principals' | 'sourceText' | 'sourceRefs'> {
  const c: Pick<CompiledPolicy, 'principals' | 'sourceText' | 'sourceRefs'> = { principals: [], sourceText: [], sourceRefs: [] };
  if (!p.spec.sources) {
    c.principals.push({ any: true });
    c.sourceText.push('every caller');
    c.sourceRefs.push('');
    return c;
  }
  p.spec.sources.forEach((s, i) => {
    const x = compileSource(env, s);
    c.principals.push(x.principal);
    c.sourceText.push(x.text);
    c.sourceRefs.push(`sources[${i}]`);
  });
  if (p.spec.action === 'DENY' && target.mode !== 'STRICT') {
    c.principals.push(NO_IDENTITY);
    c.sourceText.push(`callers without an identity (${target.service}.${target.namespace} is ${target.mode}: no client certificates, so a denied identity cannot be told apart)`);
    c.sourceRefs.push('');
  }
  return c;
}

/** The policies a target enforces, compiled to RBAC rules (oldest first within each action). */
export function compileAccess(env: AccessEnv, target: AccessTarget): CompiledAccess {
  const out: CompiledAccess = { target, deny: [], allow: [], defaultAction: env.defaultAction };
  for (const p of env.policies) {
    const destinations = selectingDestinations(p, target);
    if (destinations.length === 0) continue;
    const dests = destinations.map((i) => compileDestination(p.spec.destinations[i]!));
    const c: CompiledPolicy = {
      id: accessPolicyId(p),
      action: p.spec.action,
      destinations,
      permissions: dests.map((d) => d.permission),
      methodText: dests.map((d) => d.text),
      ...compileSources(env, p, target),
    };
    (p.spec.action === 'DENY' ? out.deny : out.allow).push(c);
  }
  return out;
}

// --- evaluation of one call against the compiled rules ----------------------

export interface AccessCall {
  /** The caller's URI SAN; undefined without mTLS. */
  identity?: string;
  /** /pkg.Service/Method; undefined when unknown (matches no method rule). */
  path?: string;
}

export interface AccessVerdict {
  action: AccessAction;
  /** "AccessPolicy ns/name", or "default" (Mesh.spec.access.default). */
  decidedBy: string;
  reason: string;
}

function stringMatches(m: StringMatcher, v: string): boolean {
  if ('exact' in m) return v === m.exact;
  if ('prefix' in m) return v.startsWith(m.prefix);
  return new RegExp(`^(?:${m.safe_regex.regex})$`, 'u').test(v);
}

/** RBAC principal semantics as gRPC (A41) and Envoy apply them. */
export function principalMatches(p: Principal, call: AccessCall): boolean {
  if ('any' in p) return true;
  if ('not_id' in p) return !principalMatches(p.not_id, call);
  if ('or_ids' in p) return p.or_ids.ids.some((x) => principalMatches(x, call));
  // authenticated: only TLS callers with a certificate; the name is the URI SAN.
  if (call.identity === undefined) return false;
  return p.authenticated.principal_name === undefined || stringMatches(p.authenticated.principal_name, call.identity);
}

export function permissionMatches(p: Permission, call: AccessCall): boolean {
  if ('any' in p) return true;
  if ('or_rules' in p) return p.or_rules.rules.some((x) => permissionMatches(x, call));
  return call.path !== undefined && stringMatches(p.url_path.path, call.path);
}

function why(c: CompiledPolicy, call: AccessCall): string | undefined {
  const src = c.principals.findIndex((p) => principalMatches(p, call));
  const dst = c.permissions.findIndex((p) => permissionMatches(p, call));
  if (src < 0 || dst < 0) return undefined;
  const ref = c.sourceRefs[src];
  return `${ref ? `${ref} (${c.sourceText[src]})` : c.sourceText[src]} and destinations[${c.destinations[dst]}] (${c.methodText[dst]}) match`;
}

/** The verdict for one call, by the rule above, with the policy that decided it and why. */
export function evaluateAccess(c: CompiledAccess, call: AccessCall): AccessVerdict {
  const caller = call.identity ?? 'a caller without an identity';
  for (const p of c.deny) {
    const w = why(p, call);
    if (w) return { action: 'DENY', decidedBy: p.id, reason: `DENY policy: ${w}` };
  }
  if (c.allow.length > 0) {
    for (const p of c.allow) {
      const w = why(p, call);
      if (w) return { action: 'ALLOW', decidedBy: p.id, reason: `ALLOW policy: ${w}` };
    }
    const names = c.allow.map((p) => p.id.replace('AccessPolicy ', '')).join(', ');
    const method = call.path ? ` for ${call.path}` : ' (no method given: method rules match nothing)';
    return { action: 'DENY', decidedBy: c.allow.length === 1 ? c.allow[0]!.id : 'ALLOW policies', reason: `ALLOW policies select this workload (${names}) and none allows ${caller}${method}` };
  }
  return { action: c.defaultAction, decidedBy: 'default', reason: `no AccessPolicy selects this workload: Mesh.spec.access.default is ${c.defaultAction}` };
}

/** The caller's identity as a server in `mode` sees it (none without mTLS). */
export function callerIdentity(td: string, mode: MtlsMode, from: { cluster: string; namespace: string; serviceAccount: string }): string | undefined {
  return mode === 'STRICT' ? workloadId(td, from.cluster, from.namespace, from.serviceAccount) : undefined;
}
