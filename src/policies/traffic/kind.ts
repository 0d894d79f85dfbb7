// TrafficPolicy: routes (matches on path, gRPC method, headers), weighted splits
// across clusters and subsets, retries, timeouts, fault injection, load
// balancing and outlier detection for the services it selects.
import { Type, type Static } from '@sinclair/typebox';
import { defineKind, type FieldError } from '../../api/kind.js';
import { DnsLabel, Labels } from '../../api/meta.js';
import { DestinationSelector, Duration, PolicyStatus, SourceSelector, noDuplicateSources } from '../common.js';

/** gRPC status codes a retry may be triggered by (gRFC A44 supports these). */
export const RETRY_CODES = ['cancelled', 'deadline-exceeded', 'internal', 'resource-exhausted', 'unavailable'] as const;

export const GRPC_CODES: Record<string, number> = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
};

const Percent = Type.Number({ minimum: 0, maximum: 100, description: 'percentage of calls, 0-100' });

export const HeaderMatch = Type.Object(
  {
    name: Type.String({
      minLength: 1,
      pattern: '^[a-z0-9-_.]+$',
      patternMessage: "must be a lowercase header name: lowercase letters, digits, '-', '_' and '.'",
      description: 'lower-case header (metadata) name',
    }),
    exact: Type.Optional(Type.String()),
    prefix: Type.Optional(Type.String({ minLength: 1 })),
    present: Type.Optional(Type.Boolean()),
    invert: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

export const RouteMatch = Type.Object(
  {
    path: Type.Optional(Type.Object({ prefix: Type.Optional(Type.String()), exact: Type.Optional(Type.String({ minLength: 1 })) }, { additionalProperties: false })),
    method: Type.Optional(
      Type.Object(
        {
          service: Type.String({ minLength: 1, description: 'fully qualified gRPC service, e.g. helloworld.Greeter' }),
          method: Type.Optional(Type.String({ minLength: 1, description: 'method name; unset: every method of the service' })),
        },
        { additionalProperties: false },
      ),
    ),
    headers: Type.Optional(Type.Array(HeaderMatch, { minItems: 1 })),
  },
  { additionalProperties: false },
);

export const SplitTarget = Type.Object(
  {
    cluster: Type.Optional(Type.String({ minLength: 1, description: 'only endpoints in this cluster' })),
    subset: Type.Optional(Labels),
    weight: Type.Integer({ minimum: 0, maximum: 100, description: "percent of the route's calls; the weights of a split add up to 100" }),
  },
  { additionalProperties: false },
);
export type SplitTarget = Static<typeof SplitTarget>;

export const Retries = Type.Object(
  {
    attempts: Type.Integer({ minimum: 2, maximum: 5, default: 3, description: 'total attempts including the first (gRPC caps at 5)' }),
    on: Type.Array(Type.Union(RETRY_CODES.map((c) => Type.Literal(c))), { minItems: 1, uniqueItems: true, default: ['unavailable'] }),
    backoff: Type.Optional(Type.Object({ baseInterval: Duration, maxInterval: Type.Optional(Duration) }, { additionalProperties: false })),
  },
  { additionalProperties: false },
);

export const Fault = Type.Object(
  {
    delay: Type.Optional(Type.Object({ fixed: Duration, percent: Percent }, { additionalProperties: false })),
    abort: Type.Optional(
      Type.Object(
        {
          grpcStatus: Type.Union(
            Object.keys(GRPC_CODES)
              .filter((c) => c !== 'OK')
              .map((c) => Type.Literal(c)),
            { default: 'UNAVAILABLE' },
          ),
          percent: Percent,
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

export const Route = Type.Object(
  {
    name: Type.Optional(DnsLabel()),
    match: Type.Optional(RouteMatch),
    split: Type.Optional(Type.Array(SplitTarget, { minItems: 1 })),
    retries: Type.Optional(Retries),
    timeout: Type.Optional(Duration),
    fault: Type.Optional(Fault),
  },
  { additionalProperties: false },
);
export type Route = Static<typeof Route>;

export const LoadBalancing = Type.Object(
  {
    policy: Type.Union([Type.Literal('ROUND_ROBIN'), Type.Literal('RING_HASH')], { default: 'ROUND_ROBIN' }),
    hashHeader: Type.Optional(Type.String({ minLength: 1, description: 'RING_HASH: header whose value picks the endpoint' })),
    minRingSize: Type.Optional(Type.Integer({ minimum: 1, maximum: 8_388_608 })),
  },
  { additionalProperties: false },
);
export type LoadBalancing = Static<typeof LoadBalancing>;

/** gRPC reads success-rate and failure-percentage ejection (gRFC A50). */
export const OutlierDetection = Type.Object(
  {
    interval: Type.Optional(Duration),
    baseEjectionTime: Type.Optional(Duration),
    maxEjectionTime: Type.Optional(Duration),
    maxEjectionPercent: Type.Optional(Type.Integer({ minimum: 0, maximum: 100 })),
    failurePercentage: Type.Optional(
      Type.Object(
        {
          threshold: Type.Integer({ minimum: 0, maximum: 100, default: 85 }),
          minimumHosts: Type.Integer({ minimum: 1, default: 5 }),
          requestVolume: Type.Integer({ minimum: 1, default: 50 }),
          enforcing: Type.Integer({ minimum: 0, maximum: 100, default: 100 }),
        },
        { additionalProperties: false },
      ),
    ),
    successRate: Type.Optional(
      Type.Object(
        {
          stdevFactor: Type.Integer({ minimum: 1, default: 1900, description: 'in thousandths (1900 = 1.9)' }),
          minimumHosts: Type.Integer({ minimum: 1, default: 5 }),
          requestVolume: Type.Integer({ minimum: 1, default: 100 }),
          enforcing: Type.Integer({ minimum: 0, maximum: 100, default: 100 }),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);
export type OutlierDetection = Static<typeof OutlierDetection>;

export const TrafficPolicySpec = Type.Object(
  {
    destinations: Type.Array(DestinationSelector, { minItems: 1, description: 'services (in the policy namespace) the policy applies to' }),
    sources: Type.Optional(Type.Array(SourceSelector, { minItems: 1, description: 'clusters whose clients get the policy; unset: every cluster' })),
    routes: Type.Optional(Type.Array(Route, { minItems: 1, description: 'first match wins; calls no route matches go to every endpoint' })),
    loadBalancing: Type.Optional(LoadBalancing),
    outlierDetection: Type.Optional(OutlierDetection),
  },
  { additionalProperties: false },
);
export type TrafficPolicySpec = Static<typeof TrafficPolicySpec>;

export const TrafficPolicyKind = defineKind({
  kind: 'TrafficPolicy',
  plural: 'trafficpolicies',
  shortNames: ['tp'],
  namespaced: true,
  discovered: false,
  spec: TrafficPolicySpec,
  status: PolicyStatus,
  columns: [
    { header: 'DESTINATIONS', value: (o) => o.spec.destinations.map((d) => d.name ?? '*').join(',') },
    { header: 'SOURCES', value: (o) => (o.spec.sources?.length ? o.spec.sources.map((s) => s.cluster).join(',') : '*') },
    { header: 'SERVICES', value: (o) => (o.status?.services ?? []).join(',') },
    { header: 'CONFLICTS', value: (o) => String(o.status?.conflicts?.length ?? 0) },
    { header: 'PROBLEMS', value: (o) => String(o.status?.problems?.length ?? 0) },
  ],
  validateObject: (o) => validateTrafficPolicy(o.spec),
});
export type TrafficPolicy = typeof TrafficPolicyKind.$object;

/** Rules the schema cannot say. Each error names the field. */
export function validateTrafficPolicy(spec: TrafficPolicySpec): FieldError[] {
  const errs: FieldError[] = [...noDuplicateSources(spec.sources)];
  if (!spec.routes && !spec.loadBalancing && !spec.outlierDetection) {
    errs.push({ path: '/spec', message: 'a TrafficPolicy sets at least one of routes, loadBalancing, outlierDetection' });
  }
  spec.routes?.forEach((r, i) => {
    const p = `/spec/routes/${i}`;
    const path = r.match?.path;
    if (path && (path.prefix === undefined) === (path.exact === undefined)) errs.push({ path: `${p}/match/path`, message: 'set exactly one of prefix, exact' });
    if (path?.exact !== undefined && !path.exact.startsWith('/')) errs.push({ path: `${p}/match/path/exact`, message: 'a gRPC path starts with "/" (/package.Service/Method)' });
    if (path && r.match?.method) errs.push({ path: `${p}/match/method`, message: 'match on path or on method, not both' });
    r.match?.headers?.forEach((h, j) => {
      const set = [h.exact, h.prefix, h.present].filter((x) => x !== undefined).length;
      if (set !== 1) errs.push({ path: `${p}/match/headers/${j}`, message: 'set exactly one of exact, prefix, present' });
      if (h.name.startsWith(':') || h.name === 'grpc-timeout' || h.name.endsWith('-bin')) errs.push({ path: `${p}/match/headers/${j}/name`, message: `gRPC cannot match on "${h.name}"` });
    });
    if (r.split) {
      const sum = r.split.reduce((s, t) => s + t.weight, 0);
      if (sum !== 100) errs.push({ path: `${p}/split`, message: `weights add up to ${sum}, not 100` });
      const seen = new Set<string>();
      r.split.forEach((t, j) => {
        const k = subsetName(t);
        if (seen.has(k)) errs.push({ path: `${p}/split/${j}`, message: `the same target (${k || 'every endpoint'}) appears twice` });
        seen.add(k);
      });
    }
    if (r.retries?.backoff?.maxInterval !== undefined && r.retries.backoff.maxInterval !== undefined) {
      // Compared in the translation units; a max below the base is rejected.
      const base = toMs(r.retries.backoff.baseInterval);
      if (toMs(r.retries.backoff.maxInterval) < base) errs.push({ path: `${p}/retries/backoff/maxInterval`, message: 'must not be below baseInterval' });
    }
    if (r.fault && !r.fault.delay && !r.fault.abort) errs.push({ path: `${p}/fault`, message: 'set delay, abort or both' });
    if (i < (spec.routes?.length ?? 0) - 1 && !r.match) errs.push({ path: `${p}/match`, message: 'only the last route may have no match (it catches every call; later routes would never be used)' });
  });
  if (spec.loadBalancing?.hashHeader && spec.loadBalancing.policy !== 'RING_HASH') {
    errs.push({ path: '/spec/loadBalancing/hashHeader', message: 'hashHeader needs policy RING_HASH' });
  }
  if (spec.loadBalancing?.policy === 'RING_HASH' && !spec.loadBalancing.hashHeader) {
    errs.push({ path: '/spec/loadBalancing/hashHeader', message: 'RING_HASH needs a hashHeader (gRPC clients hash on a header)' });
  }
  return errs;
}

function toMs(d: string): number {
  const m = /^([0-9.]+)(ms|s|m)$/.exec(d)!;
  return Number(m[1]) * (m[2] === 'ms' ? 1 : m[2] === 's' ? 1000 : 60_000);
}

/**
 * Name of a split target inside xDS cluster names: `cluster=c2,version=v3`
 * (empty for "every endpoint"). Sorted, so one target has one name.
 */
export function subsetName(t: { cluster?: string; subset?: Record<string, string> }): string {
  const parts: string[] = [];
  if (t.cluster !== undefined) parts.push(`cluster=${t.cluster}`);
  for (const k of Object.keys(t.subset ?? {}).sort()) parts.push(`${k}=${t.subset![k]}`);
  return parts.join(',');
}
