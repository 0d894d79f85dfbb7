// What an agent knows about the workload behind one of its server listeners:
// the target server-side policies (AccessPolicy) are matched against. Pure.
import type { MtlsMode, Workload } from '../../api/index.js';
import type { GlobalService } from '../../federation/types.js';
import type { ServerTarget } from '../../policies/plugin.js';

/** The target for `w` listening on workload port `port` (g: its global service, for labels and port numbers). */
export function listenerTarget(w: Workload, port: number, g: GlobalService | undefined, mode: MtlsMode): ServerTarget {
  const cluster = w.spec.cluster;
  const part = g?.parts.find((p) => p.cluster === cluster);
  const names = Object.entries(w.spec.ports)
    .filter(([, p]) => p === port)
    .map(([n]) => n);
  return {
    cluster,
    namespace: w.metadata.namespace ?? '',
    service: w.spec.service,
    workload: w.metadata.name,
    serviceLabels: part?.labels ?? {},
    ports: names.map((name) => ({ name, port: part?.ports.find((p) => p.name === name)?.port ?? port })),
    mode,
  };
}

/**
 * The target for an address no local workload is registered at: no policy
 * selects it (no namespace), so only the Mesh default applies (DENY: deny-all).
 */
export function unknownTarget(cluster: string, mode: MtlsMode): ServerTarget {
  return { cluster, namespace: '', service: '', workload: '', serviceLabels: {}, ports: [], mode };
}
