// FailoverPolicy's xDS builder: locality priorities of a
// ClusterLoadAssignment, contiguous from 0 (gRPC rejects gaps). Pure.
import type { ClientContext, LocalityRef } from '../plugin.js';
import { failoverRank, type FailoverPolicySpec } from './kind.js';

export function priorities(ctx: ClientContext, spec: Pick<FailoverPolicySpec, 'affinity' | 'order' | 'clusters'>, localities: LocalityRef[]): number[] {
  const src = { cluster: ctx.cluster, ...(ctx.locality ? { region: ctx.locality.region, zones: ctx.locality.zones } : {}) };
  const ranks = localities.map((l) => failoverRank(spec, src, l));
  const distinct = [...new Set(ranks)].sort((a, b) => a - b);
  return ranks.map((r) => distinct.indexOf(r));
}
