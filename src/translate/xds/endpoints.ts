// ClusterLoadAssignment builder: one locality per (cluster, zone); a subset
// backend keeps only its endpoints; a plugin's priorities hook (a
// FailoverPolicy's) sets the priorities, 0 everywhere otherwise. Localities of
// a Withdrawn cluster (its agent unheard for the Mesh's hold-down) then move
// below every other: a partition is no proof the cluster is dead, so they stay
// for when nothing else is left.
import type { Endpoint } from '../../federation/types.js';
import type { Backend, ClientContext } from '../../policies/plugin.js';
import { ENDPOINT_TYPE, wrap, type XdsResource } from '../../xdsapi/index.js';

export function loadAssignment(ctx: ClientContext, backend: Backend, warnings: Set<string>): XdsResource {
  const name = backend.clusterName;
  const groups = new Map<string, { cluster: string; region: string; zone: string; endpoints: { ep: Endpoint; port: number }[] }>();
  // Each address:port at most once: grpc-js-xds rejects the whole assignment on a
  // duplicate (overlapping pod ranges on different networks could produce one).
  const seen = new Map<string, string>();
  const sub = backend.subset;
  for (const part of backend.parts) {
    if (sub?.cluster !== undefined && part.cluster !== sub.cluster) continue;
    for (const ep of part.endpoints) {
      if (sub?.subset && !Object.entries(sub.subset).every(([k, v]) => ep.labels[k] === v)) continue;
      const port = ep.ports[backend.port.name];
      if (port === undefined) {
        warnings.add(`${name}: workload ${ep.cluster}/${ep.workload} has no port named "${backend.port.name}"; left out`);
        continue;
      }
      const addr = ep.address.includes(':') ? `[${ep.address}]:${port}` : `${ep.address}:${port}`;
      const owner = seen.get(addr);
      if (owner !== undefined) {
        warnings.add(`${name}: ${ep.cluster}/${ep.workload} has the same address ${addr} as ${owner}; left out`);
        continue;
      }
      seen.set(addr, `${ep.cluster}/${ep.workload}`);
      const key = `${ep.cluster}\u0000${ep.zone}`;
      let g = groups.get(key);
      if (!g) groups.set(key, (g = { cluster: ep.cluster, region: ep.region, zone: ep.zone, endpoints: [] }));
      g.endpoints.push({ ep, port });
    }
  }
  const sorted = [...groups.values()].sort((a, b) => cmp(a.cluster, b.cluster) || cmp(a.zone, b.zone));
  const prio = demoteWithdrawn(
    priorities(ctx, backend, sorted),
    sorted.map((g) => g.endpoints[0]?.ep.withdrawn === true),
  );
  const localities = sorted.map((g, i) => {
    const healthy = g.endpoints.filter((e) => e.ep.health === 'HEALTHY').length;
    return {
      locality: { region: g.region, zone: g.zone, sub_zone: g.cluster },
      // Weight = healthy endpoints, so every healthy endpoint gets an equal share.
      // A locality with none keeps weight 1 instead of being dropped: config dumps
      // still show its UNHEALTHY/DRAINING endpoints and localities and priorities
      // stay stable for failover; gRPC skips a locality without healthy endpoints
      // and Envoy scales a locality's weight by its healthy share, so it gets no
      // traffic either way. (A locality with no weight would be dropped silently.)
      load_balancing_weight: wrap(Math.max(healthy, 1)),
      // Contiguous from 0 (gRPC rejects gaps): see policies/failover.
      priority: prio[i]!,
      lb_endpoints: g.endpoints
        .sort((a, b) => cmp(a.ep.workload, b.ep.workload) || cmp(a.ep.address, b.ep.address))
        .map(({ ep, port }) => ({
          endpoint: { address: { socket_address: { address: ep.address, port_value: port } } },
          health_status: ep.health,
        })),
    };
  });
  return { typeUrl: ENDPOINT_TYPE, name, message: { cluster_name: name, endpoints: localities } };
}

/** Priorities from the first plugin that sets them (contiguous from 0: gRPC rejects gaps); 0 for every locality otherwise. */
function priorities(ctx: ClientContext, backend: Backend, localities: { cluster: string; region: string; zone: string }[]): number[] {
  for (const plugin of ctx.policies.plugins) {
    const p = plugin.xds?.priorities?.(ctx, backend, backend.policy?.byKind(plugin.kind.kind), localities);
    if (p) return p;
  }
  return localities.map(() => 0);
}

/**
 * Priorities with withdrawn localities after every other, each side keeping its
 * own order, contiguous from 0: [0,1,1,2] with the first withdrawn is [2,0,0,1].
 */
export function demoteWithdrawn(prio: number[], withdrawn: boolean[]): number[] {
  if (!withdrawn.includes(true) || !withdrawn.includes(false)) return prio;
  const rank = (keep: boolean) => [...new Set(prio.filter((_, i) => withdrawn[i] !== keep))].sort((a, b) => a - b);
  const live = rank(true);
  const gone = rank(false);
  return prio.map((p, i) => (withdrawn[i] ? live.length + gone.indexOf(p) : live.indexOf(p)));
}

// Code-unit order, not localeCompare: output must not depend on the host's locale.
function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
