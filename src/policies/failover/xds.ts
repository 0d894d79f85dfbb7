// FailoverPolicy's translation hook: locality priorities of a
// ClusterLoadAssignment, contiguous from 0 (gRPC rejects gaps).
import type { ClientContext } from '../../translate/xds/types.js';
import type { ServicePolicy } from '../resolve.js';
import { failoverRank } from './kind.js';

export function priorities(ctx: ClientContext, policy: ServicePolicy | undefined, localities: { cluster: string; region: string; zone: string }[]): number[] {
  const spec = policy?.failover?.value;
  if (!spec) return localities.map(() => 0);
  const src = { cluster: ctx.cluster, ...(ctx.locality ? { region: ctx.locality.region, zones: ctx.locality.zones } : {}) };
  const ranks = localities.map((l) => failoverRank(spec, src, l));
  const distinct = [...new Set(ranks)].sort((a, b) => a - b);
  return ranks.map((r) => distinct.indexOf(r));
}
