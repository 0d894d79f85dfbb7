// Pieces shared by the policy kinds: which services a policy selects
// (destinations), which source clusters it applies in, durations, the
// oldest-wins ordering, the status schema and the status every client-side
// policy shares. Pure.
import { Type, type Static } from '@sinclair/typebox';
import { Labels, Name } from '../api/meta.js';
import type { FieldError } from '../api/kind.js';
import type { FederatedView, GlobalService } from '../federation/types.js';

/** Selects global services in the policy's namespace. Every set field must match; `{}` selects every service of the namespace. */
export const DestinationSelector = Type.Object(
  {
    name: Type.Optional(Name),
    cluster: Type.Optional(Type.String({ minLength: 1, description: 'only services that have a part in this cluster' })),
    labels: Type.Optional(Labels),
  },
  { additionalProperties: false, description: 'services in the policy namespace; every set field must match' },
);
export type DestinationSelector = Static<typeof DestinationSelector>;

/** Source clusters whose clients get the policy (one proxy class per cluster: the agent's). */
export const SourceSelector = Type.Object({ cluster: Type.String({ minLength: 1, description: 'clients in this cluster' }) }, { additionalProperties: false });
export type SourceSelector = Static<typeof SourceSelector>;

export { Duration, DURATION, durationMs } from '../api/duration.js';

/** The fields every policy object has: it is namespaced and selects destinations (by name, among others). */
export interface PolicyObject {
  kind: string;
  metadata: { name: string; namespace?: string; creationTimestamp?: string };
  spec: { destinations: { name?: string }[] };
}

/** A client-side policy: selects services by DestinationSelector and source clusters by SourceSelector (TrafficPolicy, FailoverPolicy). */
export interface ClientPolicyObject extends PolicyObject {
  spec: { destinations: DestinationSelector[]; sources?: SourceSelector[] };
}

export function policyId(p: PolicyObject): string {
  return `${p.kind} ${p.metadata.namespace ?? ''}/${p.metadata.name}`;
}

/** Oldest first (creation time at the hub, then name): the documented precedence order. */
export function byAge(a: Pick<PolicyObject, 'metadata'>, b: Pick<PolicyObject, 'metadata'>): number {
  const ta = a.metadata.creationTimestamp ?? '9999';
  const tb = b.metadata.creationTimestamp ?? '9999';
  return ta < tb ? -1 : ta > tb ? 1 : a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0;
}

export function selectorMatches(sel: DestinationSelector, namespace: string | undefined, service: GlobalService): boolean {
  if (service.namespace !== namespace) return false;
  if (sel.name !== undefined && sel.name !== service.name) return false;
  if (sel.cluster !== undefined && !service.parts.some((p) => p.cluster === sel.cluster)) return false;
  if (sel.labels) {
    const want = Object.entries(sel.labels);
    if (!service.parts.some((p) => want.every(([k, v]) => p.labels?.[k] === v))) return false;
  }
  return true;
}

/** Whether the policy selects the service (any destination). */
export function selects(p: ClientPolicyObject, service: GlobalService): boolean {
  return p.spec.destinations.some((d) => selectorMatches(d, p.metadata.namespace, service));
}

/** Whether the policy applies to clients in `cluster`. */
export function appliesIn(p: ClientPolicyObject, cluster: string): boolean {
  return !p.spec.sources?.length || p.spec.sources.some((s) => s.cluster === cluster);
}

/** Names of services a selector can only ever select, or undefined when it may select any (no name). */
export function selectedNames(p: PolicyObject): string[] | undefined {
  const names: string[] = [];
  for (const d of p.spec.destinations) {
    if (d.name === undefined) return undefined;
    names.push(d.name);
  }
  return names;
}

export function noDuplicateSources(sources: SourceSelector[] | undefined): FieldError[] {
  const errs: FieldError[] = [];
  const seen = new Set<string>();
  (sources ?? []).forEach((s, i) => {
    if (seen.has(s.cluster)) errs.push({ path: `/spec/sources/${i}/cluster`, message: `cluster "${s.cluster}" is listed twice` });
    seen.add(s.cluster);
  });
  return errs;
}

/** Status every policy kind reports (computed by the hub at read time); kinds may add fields. */
export const PolicyStatus = Type.Object({
  services: Type.Optional(Type.Array(Type.String(), { description: 'global services the policy selects' })),
  clusters: Type.Optional(Type.Array(Type.String(), { description: 'source clusters where it is in effect' })),
  conflicts: Type.Optional(Type.Array(Type.Object({ service: Type.String(), field: Type.String(), winner: Type.String(), message: Type.String() }))),
  problems: Type.Optional(Type.Array(Type.Object({ path: Type.String(), message: Type.String() }))),
});
export type PolicyStatus = Static<typeof PolicyStatus>;

/** The policies that apply to `service` for clients in `cluster`, in the order given (oldest first). */
export function applicable<O extends ClientPolicyObject>(policies: readonly O[], service: GlobalService, cluster: string): O[] {
  return policies.filter((p) => appliesIn(p, cluster) && selects(p, service));
}

/**
 * The status part every client-side policy shares: the services it selects,
 * the source clusters where it is in effect, and destinations or source
 * clusters the view cannot satisfy. `services` are the selected services, for
 * kind-specific checks.
 */
export function clientPolicyStatus(
  view: FederatedView,
  p: ClientPolicyObject,
): { services: GlobalService[]; status: { services: string[]; clusters: string[]; conflicts: never[]; problems: FieldError[] } } {
  const clusters = view.clusters.map((c) => c.name);
  const services = view.services.filter((s) => selects(p, s));
  const problems: FieldError[] = [];
  p.spec.destinations.forEach((d, i) => {
    if (!view.services.some((s) => selectorMatches(d, p.metadata.namespace, s))) {
      const what = [d.name && `named "${d.name}"`, d.cluster && `in cluster "${d.cluster}"`, d.labels && `labelled ${JSON.stringify(d.labels)}`].filter(Boolean).join(', ');
      problems.push({ path: `/spec/destinations/${i}`, message: `no service in namespace "${p.metadata.namespace}" ${what || ''}`.trim() });
    }
  });
  p.spec.sources?.forEach((s, i) => {
    if (!clusters.includes(s.cluster)) problems.push({ path: `/spec/sources/${i}/cluster`, message: `no member cluster "${s.cluster}"` });
  });
  return {
    services,
    status: {
      services: services.map((s) => `${s.name}.${s.namespace}`),
      clusters: services.length ? clusters.filter((c) => appliesIn(p, c)) : [],
      conflicts: [],
      problems,
    },
  };
}

/** Every workload of the view as identity sources see it (cluster, namespace, service account, labels). */
export function viewIdentities(view: FederatedView): { cluster: string; namespace: string; serviceAccount: string; labels: Record<string, string> }[] {
  return view.services.flatMap((g) => g.parts.flatMap((p) => p.endpoints.map((e) => ({ cluster: e.cluster, namespace: g.namespace, serviceAccount: e.serviceAccount, labels: e.labels }))));
}
