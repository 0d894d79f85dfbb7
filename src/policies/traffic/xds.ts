// TrafficPolicy's xDS message builders, used by its plugin's hooks (plugin.ts).
// Pure: resolved policy values in, message fields out.
import type { BackendSubset, ClientContext } from '../plugin.js';
import { durationMs } from '../common.js';
import { GRPC_CODES, subsetName, type LoadBalancing, type OutlierDetection, type Route } from './kind.js';
import { anyOf, duration, wrap } from '../../xdsapi/index.js';

export const FAULT_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault';
export const FAULT_FILTER = 'envoy.filters.http.fault';

/**
 * The fault filter, always present on client listeners with an empty config
 * (no fault): routes switch it on with typed_per_filter_config, so a fault
 * policy never changes the Listener.
 */
export function faultFilter(): Record<string, unknown> {
  return { name: FAULT_FILTER, typed_config: anyOf(FAULT_TYPE) };
}

/** Split targets of the routes (the subset backends the service needs), in first-use order. */
export function splitTargets(routes: Route[] | undefined): BackendSubset[] {
  const out = new Map<string, BackendSubset>();
  for (const r of routes ?? []) {
    for (const t of r.split ?? []) {
      const name = subsetName(t);
      if (name === '' || out.has(name)) continue;
      const target: BackendSubset = { name };
      if (t.cluster !== undefined) target.cluster = t.cluster;
      if (t.subset) target.subset = t.subset;
      out.set(name, target);
    }
  }
  return [...out.values()];
}

/**
 * Route entries for a policy's routes. `clusterFor(subsetName)` names the xDS
 * cluster of a split target ('' = every endpoint). A catch-all default route
 * is appended when the policy's last route has a match.
 */
export function policyRoutes(_ctx: ClientContext, routes: Route[], clusterFor: (subset: string) => string, hashHeader?: string): Record<string, unknown>[] {
  const out = routes.map((r, i) => {
    const action: Record<string, unknown> = {};
    const split = (r.split ?? []).filter((t) => t.weight > 0);
    if (split.length === 1 || !r.split) action.cluster = clusterFor(split.length === 1 ? subsetName(split[0]!) : '');
    else action.weighted_clusters = { clusters: split.map((t) => ({ name: clusterFor(subsetName(t)), weight: wrap(t.weight) })) };
    if (r.timeout) action.max_stream_duration = { max_stream_duration: duration(durationMs(r.timeout)) };
    if (r.retries) {
      const rp: Record<string, unknown> = { retry_on: r.retries.on.join(','), num_retries: wrap(r.retries.attempts - 1) };
      if (r.retries.backoff) {
        const b: Record<string, unknown> = { base_interval: duration(durationMs(r.retries.backoff.baseInterval)) };
        if (r.retries.backoff.maxInterval) b.max_interval = duration(durationMs(r.retries.backoff.maxInterval));
        rp.retry_back_off = b;
      }
      action.retry_policy = rp;
    }
    if (hashHeader) action.hash_policy = [{ header: { header_name: hashHeader } }];
    const entry: Record<string, unknown> = { name: r.name ?? `route-${i}`, match: routeMatch(r), route: action };
    if (r.fault) entry.typed_per_filter_config = { [FAULT_FILTER]: faultConfig(r.fault) };
    return entry;
  });
  if (routes.at(-1)?.match) {
    const action: Record<string, unknown> = { cluster: clusterFor('') };
    if (hashHeader) action.hash_policy = [{ header: { header_name: hashHeader } }];
    out.push({ name: 'default', match: { prefix: '' }, route: action });
  }
  return out;
}

function routeMatch(r: Route): Record<string, unknown> {
  const m: Record<string, unknown> = {};
  const mt = r.match;
  if (mt?.path?.exact !== undefined) m.path = mt.path.exact;
  else if (mt?.method) m[mt.method.method ? 'path' : 'prefix'] = `/${mt.method.service}/${mt.method.method ?? ''}`;
  else m.prefix = mt?.path?.prefix ?? '';
  if (mt?.headers) {
    m.headers = mt.headers.map((h) => {
      const hm: Record<string, unknown> = { name: h.name };
      if (h.exact !== undefined) hm.string_match = { exact: h.exact };
      else if (h.prefix !== undefined) hm.string_match = { prefix: h.prefix };
      else hm.present_match = h.present;
      if (h.invert) hm.invert_match = true;
      return hm;
    });
  }
  return m;
}

function percent(p: number): Record<string, unknown> {
  // Millionths keep fractional percentages exact.
  return { numerator: Math.round(p * 10_000), denominator: 'MILLION' };
}

function faultConfig(f: NonNullable<Route['fault']>): Record<string, unknown> {
  const c: Record<string, unknown> = {};
  if (f.delay) c.delay = { fixed_delay: duration(durationMs(f.delay.fixed)), percentage: percent(f.delay.percent) };
  if (f.abort) c.abort = { grpc_status: GRPC_CODES[f.abort.grpcStatus] ?? 14, percentage: percent(f.abort.percent) };
  return anyOf(FAULT_TYPE, c);
}

/** lb_policy (and ring hash settings) of a Cluster. */
export function lbFields(lb: LoadBalancing | undefined): Record<string, unknown> {
  if (lb?.policy !== 'RING_HASH') return { lb_policy: 'ROUND_ROBIN' };
  return { lb_policy: 'RING_HASH', ring_hash_lb_config: { minimum_ring_size: wrap(lb.minRingSize ?? 1024), hash_function: 'XX_HASH' } };
}

/**
 * The full outlier_detection block: every field explicit (grpc-js-xds wipes
 * defaults for unset fields), enforcing 0 unless the policy turns a kind on.
 */
export function outlierFields(od: OutlierDetection | undefined): Record<string, unknown> {
  const fp = od?.failurePercentage;
  const sr = od?.successRate;
  return {
    interval: duration(od?.interval ? durationMs(od.interval) : 10_000),
    base_ejection_time: duration(od?.baseEjectionTime ? durationMs(od.baseEjectionTime) : 30_000),
    max_ejection_time: duration(od?.maxEjectionTime ? durationMs(od.maxEjectionTime) : 300_000),
    max_ejection_percent: wrap(od?.maxEjectionPercent ?? 10),
    enforcing_success_rate: wrap(sr?.enforcing ?? 0),
    success_rate_minimum_hosts: wrap(sr?.minimumHosts ?? 5),
    success_rate_request_volume: wrap(sr?.requestVolume ?? 100),
    success_rate_stdev_factor: wrap(sr?.stdevFactor ?? 1900),
    enforcing_failure_percentage: wrap(fp?.enforcing ?? 0),
    failure_percentage_minimum_hosts: wrap(fp?.minimumHosts ?? 5),
    failure_percentage_request_volume: wrap(fp?.requestVolume ?? 50),
    failure_percentage_threshold: wrap(fp?.threshold ?? 85),
    // Not read by gRPC, but Envoy enforces consecutive-5xx ejection at 100 % by
    // default once the block exists: keep it off there too.
    enforcing_consecutive_5xx: wrap(0),
  };
}
