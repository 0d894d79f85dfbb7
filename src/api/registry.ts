// Every kind the API serves. Adding a kind means adding its file under kinds/
// (or a policy folder) and one line here.
import type { KindDef } from './kind.js';
import { ClusterKind } from './kinds/cluster.js';
import { MeshKind } from './kinds/mesh.js';
import { ServiceKind } from './kinds/service.js';
import { WorkloadKind } from './kinds/workload.js';
import { AccessPolicyKind } from '../policies/access/kind.js';
import { FailoverPolicyKind } from '../policies/failover/kind.js';
import { TrafficPolicyKind } from '../policies/traffic/kind.js';

export const KINDS: readonly KindDef[] = [ClusterKind, MeshKind, ServiceKind, WorkloadKind, TrafficPolicyKind, FailoverPolicyKind, AccessPolicyKind] as unknown as KindDef[];

const byAnyName = new Map<string, KindDef>();
for (const k of KINDS) {
  for (const n of [k.kind, k.kind.toLowerCase(), k.plural, ...(k.shortNames ?? [])]) byAnyName.set(n.toLowerCase(), k);
}

/** Finds a kind by its name, plural or short name (case-insensitive), as `get` accepts. */
export function findKind(name: string): KindDef | undefined {
  return byAnyName.get(name.toLowerCase());
}

export function kindNames(): string[] {
  return KINDS.map((k) => k.kind);
}
