// xDS cluster names of split targets: outbound|PORT|SUBSET|HOST, SUBSET being
// the target's sorted `cluster=...,label=value` (unique per service and port).
export function subsetClusterName(host: string, port: number, subset: string): string {
  return `outbound|${port}|${subset}|${host}`;
}
