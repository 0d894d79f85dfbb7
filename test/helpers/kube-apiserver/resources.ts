// Stand-in Kubernetes API server (test infrastructure, not a product): the table of
// resources it serves and the legacy discovery documents built from it (/api,
// /apis, /api/v1, /apis/{group}/{version}). kubectl and @kubernetes/client-node
// read these to map a kind to its path and scope. Invariants: one entry per
// (group, version, plural); `statusOnCreate` says what a real server's create
// strategy does with a submitted status (Nodes keep it, Pods become Pending,
// Services and custom resources start empty); `mergeKeys` are the
// patchMergeKeys strategic merge patch and server-side apply use for lists
// (path of field names from the object root, list items skipped); a list not
// named there is atomic (replaced whole), as in the real types. The kinds
// `meshfed install` prints (Deployment, ClusterRole, ...) are stored like any
// other object: no controller acts on them (no pods appear, no RBAC applies).

export interface ResourceType {
  group: string; // '' for core
  version: string;
  kind: string;
  plural: string;
  singular: string;
  namespaced: boolean;
  shortNames: string[];
  hasStatus: boolean;
  statusOnCreate: 'keep' | 'empty' | 'pod' | 'namespace';
  /** custom resources reject strategic merge patch, as the real server does */
  custom: boolean;
  mergeKeys: Record<string, string>;
  /** discovery categories (`kubectl get <category>`): custom resources' names.categories */
  categories?: string[];
}

const META_KEYS: Record<string, string> = { 'metadata.ownerReferences': 'uid' };
const POD_KEYS: Record<string, string> = {
  'spec.containers': 'name',
  'spec.initContainers': 'name',
  'spec.containers.ports': 'containerPort',
  'spec.containers.env': 'name',
  'spec.containers.volumeMounts': 'mountPath',
  'spec.initContainers.env': 'name',
  'spec.volumes': 'name',
  'spec.imagePullSecrets': 'name',
  'status.conditions': 'type',
  'status.containerStatuses': 'name',
};

function rt(group: string, version: string, kind: string, plural: string, namespaced: boolean, opts: Partial<ResourceType> = {}): ResourceType {
  return {
    group,
    version,
    kind,
    plural,
    singular: kind.toLowerCase(),
    namespaced,
    shortNames: [],
    hasStatus: false,
    statusOnCreate: 'keep',
    custom: false,
    ...opts,
    mergeKeys: { ...META_KEYS, ...(opts.mergeKeys ?? {}) },
  };
}

export const RESOURCES: ResourceType[] = [
  rt('', 'v1', 'Namespace', 'namespaces', false, { shortNames: ['ns'], hasStatus: true, statusOnCreate: 'namespace', mergeKeys: { 'status.conditions': 'type' } }),
  rt('', 'v1', 'Service', 'services', true, { shortNames: ['svc'], hasStatus: true, statusOnCreate: 'empty', mergeKeys: { 'spec.ports': 'port', 'status.conditions': 'type' } }),
  rt('', 'v1', 'Pod', 'pods', true, { shortNames: ['po'], hasStatus: true, statusOnCreate: 'pod', mergeKeys: POD_KEYS }),
  rt('', 'v1', 'Node', 'nodes', false, { shortNames: ['no'], hasStatus: true, statusOnCreate: 'keep', mergeKeys: { 'status.conditions': 'type', 'status.addresses': 'type' } }),
  rt('', 'v1', 'Event', 'events', true, { shortNames: ['ev'] }),
  // What `meshfed install` creates (test/unit/install.test.ts applies it with kubectl): stored, not acted on.
  rt('', 'v1', 'ServiceAccount', 'serviceaccounts', true, { shortNames: ['sa'] }),
  rt('', 'v1', 'Secret', 'secrets', true),
  rt('', 'v1', 'PersistentVolumeClaim', 'persistentvolumeclaims', true, { shortNames: ['pvc'], hasStatus: true, statusOnCreate: 'empty', mergeKeys: { 'status.conditions': 'type' } }),
  rt('apps', 'v1', 'Deployment', 'deployments', true, {
    shortNames: ['deploy'],
    hasStatus: true,
    statusOnCreate: 'empty',
    mergeKeys: Object.fromEntries([
      ...Object.entries(POD_KEYS)
        .filter(([k]) => k.startsWith('spec.'))
        .map(([k, v]) => [`spec.template.${k}`, v]),
      ['status.conditions', 'type'],
    ]),
  }),
  rt('policy', 'v1', 'PodDisruptionBudget', 'poddisruptionbudgets', true, { shortNames: ['pdb'], hasStatus: true, statusOnCreate: 'empty', mergeKeys: { 'status.conditions': 'type' } }),
  rt('rbac.authorization.k8s.io', 'v1', 'ClusterRole', 'clusterroles', false),
  rt('rbac.authorization.k8s.io', 'v1', 'ClusterRoleBinding', 'clusterrolebindings', false),
  rt('discovery.k8s.io', 'v1', 'EndpointSlice', 'endpointslices', true),
  // creating one serves its kind (crds.ts)
  rt('apiextensions.k8s.io', 'v1', 'CustomResourceDefinition', 'customresourcedefinitions', false, {
    shortNames: ['crd', 'crds'],
    hasStatus: true,
    statusOnCreate: 'empty',
    mergeKeys: { 'status.conditions': 'type' },
  }),
  rt('multicluster.x-k8s.io', 'v1alpha1', 'ServiceExport', 'serviceexports', true, {
    shortNames: ['svcex'],
    hasStatus: true,
    statusOnCreate: 'empty',
    custom: true,
    mergeKeys: { 'status.conditions': 'type' },
  }),
  rt('multicluster.x-k8s.io', 'v1alpha1', 'ServiceImport', 'serviceimports', true, {
    shortNames: ['svcim'],
    hasStatus: true,
    statusOnCreate: 'empty',
    custom: true,
    mergeKeys: { 'status.clusters': 'cluster' },
  }),
];

export function apiVersionOf(t: ResourceType): string {
  return t.group ? `${t.group}/${t.version}` : t.version;
}

// `types`: what one server serves (RESOURCES and the kinds of its CustomResourceDefinitions, crds.ts).

export function findResource(group: string, version: string, plural: string, types: readonly ResourceType[] = RESOURCES): ResourceType | undefined {
  return types.find((t) => t.group === group && t.version === version && t.plural === plural);
}

export function findKind(apiVersion: string, kind: string): ResourceType | undefined {
  return RESOURCES.find((t) => apiVersionOf(t) === apiVersion && t.kind === kind);
}

const VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

/** APIResourceList for one group/version, as GET /api/v1 or /apis/{g}/{v} returns it. */
export function resourceList(group: string, version: string, all: readonly ResourceType[] = RESOURCES): Record<string, unknown> | undefined {
  const types = all.filter((t) => t.group === group && t.version === version);
  if (types.length === 0) return undefined;
  const resources: Record<string, unknown>[] = [];
  for (const t of types) {
    resources.push({
      name: t.plural,
      singularName: t.singular,
      namespaced: t.namespaced,
      kind: t.kind,
      verbs: VERBS,
      ...(t.shortNames.length ? { shortNames: t.shortNames } : {}),
      ...(t.categories?.length ? { categories: t.categories } : {}),
    });
    if (t.hasStatus) resources.push({ name: `${t.plural}/status`, singularName: '', namespaced: t.namespaced, kind: t.kind, verbs: ['get', 'patch', 'update'] });
  }
  return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: group ? `${group}/${version}` : version, resources };
}

function groupEntry(group: string, types: readonly ResourceType[]): Record<string, unknown> {
  const versions = [...new Set(types.filter((t) => t.group === group).map((t) => t.version))].map((v) => ({ groupVersion: `${group}/${v}`, version: v }));
  return { name: group, versions, preferredVersion: versions[0] };
}

export function apiGroupList(types: readonly ResourceType[] = RESOURCES): Record<string, unknown> {
  const groups = [...new Set(types.map((t) => t.group).filter((g) => g !== ''))];
  return { kind: 'APIGroupList', apiVersion: 'v1', groups: groups.map((g) => groupEntry(g, types)) };
}

export function apiGroup(group: string, types: readonly ResourceType[] = RESOURCES): Record<string, unknown> | undefined {
  if (!types.some((t) => t.group === group)) return undefined;
  return { kind: 'APIGroup', apiVersion: 'v1', ...groupEntry(group, types) };
}

export function coreVersions(): Record<string, unknown> {
  return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: '127.0.0.1' }] };
}
