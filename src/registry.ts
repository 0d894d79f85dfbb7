// The composition root of meshfed's API: the core kinds and the ONE list of
// policy plugins. Everything that depends on "which kinds exist" derives from
// here: the API registry (parsing, get, CRDs), the policy kinds, the kinds
// the hub sends to agents, and the PolicySet every translation reads.
//
// Adding a policy kind = a folder src/policies/<kind>/ exporting a
// PolicyPlugin (plugin.ts), and one line in POLICY_PLUGINS below.
import {
  ClusterKind,
  crdFor,
  KindRegistry,
  MeshKind,
  ServiceKind,
  WorkloadKind,
  parseAndValidate as parseWith,
  parseAndValidateSliced as parseSlicedWith,
  validateDocuments as validateDocumentsWith,
  validateObject as validateObjectWith,
  type ApiObject,
  type KindDef,
} from './api/index.js';
import { RoleBindingKind, RoleKind } from './api/kinds/role.js';
import { PolicySet, type AnyPolicyPlugin } from './policies/plugin.js';
import { TrafficPolicyPlugin } from './policies/traffic/plugin.js';
import { FailoverPolicyPlugin } from './policies/failover/plugin.js';
import { AccessPolicyPlugin } from './policies/access/plugin.js';

/** Every policy kind, in the order their hooks run (and their statuses are listed). */
export const POLICY_PLUGINS: readonly AnyPolicyPlugin[] = [TrafficPolicyPlugin, FailoverPolicyPlugin, AccessPolicyPlugin];

/** The kinds of the fleet's topology and discovery, beside the policies. */
const CORE_KINDS: readonly KindDef[] = [ClusterKind, MeshKind, ServiceKind, WorkloadKind, RoleKind, RoleBindingKind];

/** Kinds that stay at the hub: who may do what is no agent's business. */
const HUB_ONLY_KINDS: ReadonlySet<KindDef> = new Set([RoleKind, RoleBindingKind]);

/** Every kind the API serves. */
export const KINDS: readonly KindDef[] = [...CORE_KINDS, ...POLICY_PLUGINS.map((p) => p.kind)];

export const REGISTRY = new KindRegistry(KINDS);

export const POLICY_KINDS: ReadonlySet<string> = new Set(POLICY_PLUGINS.map((p) => p.kind.kind));

/** Kinds the hub sends to agents: the topology, what every cluster discovered, and every policy (not Roles). */
export const VIEW_KINDS: ReadonlySet<string> = new Set(KINDS.filter((k) => !HUB_ONLY_KINDS.has(k)).map((k) => k.kind));

/**
 * The kinds `meshfed crds` defines for Kubernetes: what the hub reads from its own cluster (--kubernetes-policies):
 * Mesh and every policy kind. Discovered kinds (Service, Workload) get none: agents report them and Kubernetes
 * already has its own Services (a meshfed.io `services` resource would only shadow `kubectl get services`);
 * Clusters, Roles and RoleBindings stay with the hub's API (join tokens, who may do what).
 */
export const CRD_KINDS: readonly KindDef[] = [MeshKind, ...POLICY_PLUGINS.map((p) => p.kind)];

/** The CustomResourceDefinitions of CRD_KINDS (apiextensions.k8s.io/v1, structural schemas). */
export function crds(): Record<string, unknown>[] {
  return CRD_KINDS.map(crdFor);
}

/** The plugin of a policy kind. */
export function pluginOf(kind: string): AnyPolicyPlugin | undefined {
  return POLICY_PLUGINS.find((p) => p.kind.kind === kind);
}

/** The policies among `objects` (others ignored), by plugin, oldest first. */
export function policySet(objects: Iterable<{ kind: string }>): PolicySet {
  return new PolicySet(POLICY_PLUGINS, objects);
}

/** Finds a kind by its name, plural or short name (case-insensitive), as `get` accepts. */
export function findKind(name: string): KindDef | undefined {
  return REGISTRY.find(name);
}

export function kindNames(): string[] {
  return REGISTRY.names();
}

/** YAML or JSON text (several documents) -> validated objects, all or nothing (src/api/parse.ts). */
export function parseAndValidate(text: string, source = 'input'): ApiObject[] {
  return parseWith(REGISTRY, text, source);
}

/** parseAndValidate, validating in slices that yield to the event loop (servers). */
export function parseAndValidateSliced(text: string, source = 'input'): Promise<ApiObject[]> {
  return parseSlicedWith(REGISTRY, text, source);
}

export function validateDocuments(raw: unknown[], source = 'input'): ApiObject[] {
  return validateDocumentsWith(REGISTRY, raw, source);
}

export function validateObject(doc: unknown): ReturnType<typeof validateObjectWith> {
  return validateObjectWith(REGISTRY, doc);
}
