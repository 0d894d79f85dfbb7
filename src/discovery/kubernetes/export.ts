// Export rules: which Kubernetes Services join the global service, whether
// their endpoints are shared with other clusters, and their default failover
// affinity, from a ServiceExport and annotations (meshfed's and Cilium Cluster
// Mesh's, so a Cilium user migrates without editing a Service). Pure.
//
// exported (Service spec.exported) when, on the Service:
//   meshfed.io/export: "false"                          never (wins over everything below)
//   a ServiceExport of the same name in its namespace   (multicluster.x-k8s.io/v1alpha1, KEP-1645)
//   meshfed.io/export: "true"
//   service.cilium.io/global: "true" | io.cilium/global-service: "true"
//   none of these, but its Namespace has meshfed.io/export: "true"
// Otherwise the Service is local: this cluster's clients reach it, no other cluster does.
// shared: service.cilium.io/shared (older io.cilium/shared-service): "false" keeps an exported
//   Service's endpoints to this cluster while its clients still reach every other cluster's (Cilium's meaning).
// affinity: service.cilium.io/affinity (older io.cilium/service-affinity): local | remote | none.
// Values are case-insensitive (as Cilium reads them); any other value is a Problem naming
// the annotation and value, and the annotation is ignored (as if absent).
import type { ServiceSpec } from '../../api/index.js';

export const ANNOTATIONS = {
  export: 'meshfed.io/export',
  ciliumGlobal: 'service.cilium.io/global',
  ciliumGlobalOld: 'io.cilium/global-service',
  ciliumShared: 'service.cilium.io/shared',
  ciliumSharedOld: 'io.cilium/shared-service',
  ciliumAffinity: 'service.cilium.io/affinity',
  ciliumAffinityOld: 'io.cilium/service-affinity',
} as const;

/** Something wrong in an object a user wrote; reported, never fatal. */
export interface Problem {
  /** The object, "Kind namespace/name". */
  object: { kind: string; namespace?: string; name: string };
  /** The field, e.g. `metadata.annotations[service.cilium.io/affinity]`. */
  field: string;
  value: string;
  /** Kubernetes Event reason. */
  reason: 'InvalidAnnotation' | 'InvalidPort' | 'InvalidEndpoint';
  message: string;
}

export interface ExportInput {
  namespace: string;
  name: string;
  annotations: Record<string, string> | undefined;
  namespaceAnnotations: Record<string, string> | undefined;
  /** A ServiceExport of the same name exists (and is not being deleted). */
  serviceExport: boolean;
}

export type ExportDecision = Pick<ServiceSpec, 'exported' | 'shared' | 'affinity'> & { problems: Problem[]; reasons: string[] };

const MAX_VALUE = 63;

export function exportRules(input: ExportInput): ExportDecision {
  const problems: Problem[] = [];
  const object = { kind: 'Service', namespace: input.namespace, name: input.name };
  const ann = input.annotations ?? {};
  const read = <T extends string>(key: string, allowed: readonly T[], annotations: Record<string, string> = ann, obj: Problem['object'] = object): T | undefined => {
    const raw = annotations[key];
    if (raw === undefined) return undefined;
    const v = raw.trim().toLowerCase();
    if ((allowed as readonly string[]).includes(v)) return v as T;
    const shown = raw.length > MAX_VALUE ? `${raw.slice(0, MAX_VALUE)}...` : raw;
    problems.push({
      object: obj,
      field: `metadata.annotations[${key}]`,
      value: shown,
      reason: 'InvalidAnnotation',
      message: `${obj.kind} ${obj.namespace ? `${obj.namespace}/` : ''}${obj.name}: annotation ${key} is "${shown}"; expected ${allowed.map((a) => `"${a}"`).join(' or ')} (ignored)`,
    });
    return undefined;
  };
  const bool = ['true', 'false'] as const;
  const own = read(ANNOTATIONS.export, bool);
  const global = read(ANNOTATIONS.ciliumGlobal, bool);
  const globalOld = read(ANNOTATIONS.ciliumGlobalOld, bool);
  const shared = read(ANNOTATIONS.ciliumShared, bool) ?? read(ANNOTATIONS.ciliumSharedOld, bool);
  const affinity = read(ANNOTATIONS.ciliumAffinity, ['local', 'remote', 'none'] as const) ?? read(ANNOTATIONS.ciliumAffinityOld, ['local', 'remote', 'none'] as const);
  const nsDefault = read(ANNOTATIONS.export, bool, input.namespaceAnnotations ?? {}, { kind: 'Namespace', name: input.namespace } as Problem['object']);

  const reasons: string[] = [];
  let exported = false;
  if (own === 'false') reasons.push(`${ANNOTATIONS.export}: "false"`);
  else {
    if (input.serviceExport) reasons.push('ServiceExport');
    if (own === 'true') reasons.push(`${ANNOTATIONS.export}: "true"`);
    if (global === 'true') reasons.push(`${ANNOTATIONS.ciliumGlobal}: "true"`);
    if (globalOld === 'true') reasons.push(`${ANNOTATIONS.ciliumGlobalOld}: "true"`);
    exported = reasons.length > 0;
    if (!exported && nsDefault === 'true') {
      exported = true;
      reasons.push(`Namespace ${input.namespace} ${ANNOTATIONS.export}: "true"`);
    }
  }
  const out: ExportDecision = { exported, problems, reasons };
  if (exported && shared === 'false') out.shared = false;
  if (affinity) out.affinity = affinity;
  return out;
}
