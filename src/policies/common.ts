// Pieces shared by every policy kind: which services a policy selects
// (destinations), which source clusters it applies in, durations, and the
// oldest-wins ordering. Pure.
import { Type, type Static } from '@sinclair/typebox';
import { Labels, Name } from '../api/meta.js';
import type { FieldError } from '../api/kind.js';
import type { GlobalService } from '../federation/types.js';

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
export const SourceSelector = Type.Object(
  { cluster: Type.String({ minLength: 1, description: 'clients in this cluster' }) },
  { additionalProperties: false },
);
export type SourceSelector = Static<typeof SourceSelector>;

export { Duration, DURATION, durationMs } from '../api/duration.js';

/** The fields every policy object has (TrafficPolicy and FailoverPolicy objects are structurally this). */
export interface PolicyObject {
  kind: string;
  metadata: { name: string; namespace?: string; creationTimestamp?: string };
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
export function selects(p: PolicyObject, service: GlobalService): boolean {
  return p.spec.destinations.some((d) => selectorMatches(d, p.metadata.namespace, service));
}

/** Whether the policy applies to clients in `cluster`. */
export function appliesIn(p: PolicyObject, cluster: string): boolean {
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
