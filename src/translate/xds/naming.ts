// xDS cluster names of split targets: outbound|PORT|SUBSET|HOST, SUBSET being
// the target's sorted `cluster=...,label=value` (unique per service and port).
import { flat } from '../../util/intern.js';

export function subsetClusterName(host: string, port: number, subset: string): string {
  return flat(`outbound|${port}|${subset}|${host}`);
}
