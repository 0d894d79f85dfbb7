// FailoverPolicy: where a service's clients send calls first, and in which
// order they fail over (affinity local / remote / none; locality tiers; an
// explicit cluster order).
import { Type, type Static } from '@sinclair/typebox';
import { defineKind, type FieldError } from '../../api/kind.js';
import { DestinationSelector, PolicyStatus, SourceSelector, noDuplicateSources } from '../common.js';

export const FailoverPolicySpec = Type.Object(
  {
    destinations: Type.Array(DestinationSelector, { minItems: 1 }),
    sources: Type.Optional(Type.Array(SourceSelector, { minItems: 1 })),
    affinity: Type.Union([Type.Literal('local'), Type.Literal('remote'), Type.Literal('none')], {
      default: 'local',
      description: "local: only the client's cluster while any of its endpoints is healthy; remote: other clusters first; none: spread over all",
    }),
    order: Type.Array(Type.Union([Type.Literal('zone'), Type.Literal('region')]), {
      uniqueItems: true,
      default: ['zone', 'region'],
      description: 'locality tiers after the preferred clusters: same zone, then same region, then every other region',
    }),
    clusters: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { minItems: 1, uniqueItems: true, description: 'explicit failover order of other clusters (before the locality tiers)' })),
  },
  { additionalProperties: false },
);
export type FailoverPolicySpec = Static<typeof FailoverPolicySpec>;

export const FailoverPolicyKind = defineKind({
  kind: 'FailoverPolicy',
  plural: 'failoverpolicies',
  shortNames: ['fp'],
  namespaced: true,
  discovered: false,
  spec: FailoverPolicySpec,
  status: PolicyStatus,
  columns: [
    { header: 'DESTINATIONS', value: (o) => o.spec.destinations.map((d) => d.name ?? '*').join(',') },
    { header: 'AFFINITY', value: (o) => o.spec.affinity },
    { header: 'ORDER', value: (o) => [...(o.spec.clusters ?? []), ...o.spec.order].join('>') || '-' },
    { header: 'SERVICES', value: (o) => (o.status?.services ?? []).join(',') },
    { header: 'CONFLICTS', value: (o) => String(o.status?.conflicts?.length ?? 0) },
    { header: 'PROBLEMS', value: (o) => String(o.status?.problems?.length ?? 0) },
  ],
  validateObject: (o) => validateFailoverPolicy(o.spec),
});
export type FailoverPolicy = typeof FailoverPolicyKind.$object;

export function validateFailoverPolicy(spec: FailoverPolicySpec): FieldError[] {
  const errs = noDuplicateSources(spec.sources);
  if (spec.affinity === 'none' && spec.clusters) errs.push({ path: '/spec/clusters', message: 'affinity none spreads over every cluster: a cluster order means nothing' });
  return errs;
}

/** Source locality the priorities are computed from: the agent's cluster (its region and zones). */
export interface SourceLocality {
  cluster: string;
  region?: string;
  zones?: string[];
}

/**
 * Failover rank of a locality for clients at `src` (lower is preferred). Ranks
 * are compressed into contiguous priorities by the caller.
 *   local:  own cluster 0; then `clusters` in order; then zone, region tiers; then the rest
 *   remote: the same without the own cluster, which comes last
 *   none:   everything 0
 */
export function failoverRank(spec: Pick<FailoverPolicySpec, 'affinity' | 'order' | 'clusters'>, src: SourceLocality, loc: { cluster: string; region: string; zone: string }): number {
  if (spec.affinity === 'none') return 0;
  const listed = spec.clusters ?? [];
  const remote = (): number => {
    const i = listed.indexOf(loc.cluster);
    if (i >= 0) return i;
    let tier = spec.order.length;
    spec.order.forEach((t, k) => {
      if (tier !== spec.order.length) return;
      if (t === 'zone' && src.zones?.includes(loc.zone)) tier = k;
      if (t === 'region' && src.region !== undefined && src.region === loc.region) tier = k;
    });
    return listed.length + tier;
  };
  const own = loc.cluster === src.cluster;
  if (spec.affinity === 'local') return own ? 0 : 1 + remote();
  return own ? 1_000_000 : remote();
}
