// `meshfed install hub|agent`: the Kubernetes manifests, generated (pure: options
// in, objects out, no I/O; the CLI reads files and prints). Invariants:
// - every object is a valid Kubernetes object with no field its schema does
//   not declare (test/unit/install.test.ts checks against kubernetes-models);
// - every object carries the same labels (app.kubernetes.io/*), so
//   `kubectl delete -l app.kubernetes.io/part-of=meshfed` removes an install;
// - the ClusterRoles are made from the one permission table (permissions.ts);
// - the containers run as non-root with a read-only root filesystem and no
//   capabilities; what they write goes to the data volume and /tmp.
// Hub and agent each keep state in their data directory (the hub its store and
// root of trust; the agent its client certificate, its cluster's intermediate CA
// key and the journaled view): a PersistentVolumeClaim each, one replica, and
// the Recreate strategy, so a new pod never opens a data directory the old one
// still holds. The join token is single use: an agent that lost its data
// directory needs a new one (meshfed cluster add again).
import { DNS_LABEL } from '../api/meta.js';
import { parseJoinToken } from '../channel/join-token.js';
import { parseHostPort } from '../util/address.js';
import { errorMessage, MeshfedError } from '../util/errors.js';
import { AGENT_GRANTS, hubGrants, rulesOf, type Grant } from './permissions.js';

export type K8sObject = Record<string, unknown> & {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
};

/** One manifest: the object, and the comment printed above it in YAML (why it is as it is). */
export interface Manifest {
  object: K8sObject;
  comment?: string;
}

const m = (object: K8sObject, comment?: string): Manifest => (comment ? { object, comment } : { object });

export const DEFAULT_NAMESPACE = 'meshfed';
export const DATA_DIR = '/var/lib/meshfed';
export const JOIN_TOKEN_DIR = '/var/run/meshfed/join';
export const JOIN_TOKEN_FILE = `${JOIN_TOKEN_DIR}/token`;
/** The image's user (Dockerfile): a fixed UID so runAsNonRoot can be checked and the volume made writable (fsGroup). */
export const IMAGE_UID = 10001;

export const PORTS = { hubApi: 7400, hubChannel: 7401, agentXds: 15010, agentApi: 15011 } as const;

export function defaultImage(version: string): string {
  return `ghcr.io/meshfed/meshfed:${version}`;
}

interface Common {
  /** meshfed's version (labels, default image tag). */
  version: string;
  namespace?: string;
  image?: string;
  imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  /** StorageClass of the data volume (default: the cluster's default class). */
  storageClass?: string;
  /** Size of the data volume (default 1Gi). */
  storageSize?: string;
}

export interface HubInstallOptions extends Common {
  /** The CustomResourceDefinitions the hub reads (meshfed crds); printed first unless skipCrds. */
  crds: readonly Record<string, unknown>[];
  skipCrds?: boolean;
  /** Kubernetes' cluster DNS domain (default cluster.local): the Service's names in the certificates. */
  clusterDomain?: string;
  /** More names agents or users reach the hub by (a load balancer's name): certificate SANs and Host checks. */
  extraSans?: string[];
  /** Service type (default ClusterIP; LoadBalancer for agents in other clusters). */
  serviceType?: 'ClusterIP' | 'NodePort' | 'LoadBalancer';
}

export interface AgentInstallOptions extends Common {
  cluster: string;
  /** The hub's agent channel, HOST:PORT. */
  hub: string;
  /** The one-time join token from meshfed cluster add (becomes a Secret). */
  joinToken: string;
}

const NAME = { hub: 'meshfed-hub', agent: 'meshfed-agent' } as const;

function labels(component: 'hub' | 'agent', version: string): Record<string, string> {
  return {
    'app.kubernetes.io/name': NAME[component],
    'app.kubernetes.io/component': component,
    'app.kubernetes.io/part-of': 'meshfed',
    'app.kubernetes.io/version': version,
    'app.kubernetes.io/managed-by': 'meshfed-install',
  };
}

/** The pod selector: stable across versions (a Deployment's selector cannot change). */
function selector(component: 'hub' | 'agent'): Record<string, string> {
  return { 'app.kubernetes.io/name': NAME[component], 'app.kubernetes.io/part-of': 'meshfed' };
}

function meta(name: string, component: 'hub' | 'agent', o: Common, namespaced = true): K8sObject['metadata'] {
  return { name, ...(namespaced ? { namespace: o.namespace ?? DEFAULT_NAMESPACE } : {}), labels: labels(component, o.version) };
}

function namespaceObject(o: Common): Manifest {
  // Shared by the hub and an agent installed into one namespace: only the labels both give it.
  return m({
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name: o.namespace ?? DEFAULT_NAMESPACE, labels: { 'app.kubernetes.io/part-of': 'meshfed', 'app.kubernetes.io/managed-by': 'meshfed-install' } },
  });
}

function rbac(component: 'hub' | 'agent', o: Common, grants: readonly Grant[], why: string): Manifest[] {
  const name = NAME[component];
  return [
    m({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: meta(name, component, o) }),
    m(
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRole',
        metadata: meta(name, component, o, false),
        rules: rulesOf(grants),
      },
      why,
    ),
    m({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: meta(name, component, o, false),
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name },
      subjects: [{ kind: 'ServiceAccount', name, namespace: o.namespace ?? DEFAULT_NAMESPACE }],
    }),
  ];
}

function dataClaim(component: 'hub' | 'agent', o: Common): Manifest {
  return m(
    {
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: meta(`${NAME[component]}-data`, component, o),
      spec: {
        accessModes: ['ReadWriteOnce'],
        ...(o.storageClass ? { storageClassName: o.storageClass } : {}),
        resources: { requests: { storage: o.storageSize ?? '1Gi' } },
      },
    },
    DATA_PURPOSE[component],
  );
}

const DATA_PURPOSE = {
  hub: 'The data directory: the hub store (write-ahead log, snapshots), the root of trust and the audit log.',
  agent:
    "The data directory: the agent's client certificate, its cluster's intermediate CA key and the journaled view.\nKept across restarts: the join token is single use, so an agent that lost it needs a new token.",
} as const;

interface PodSpecInput {
  component: 'hub' | 'agent';
  args: string[];
  ports: { name: string; containerPort: number }[];
  /** The port and scheme of the probes (the API). */
  probe: { port: string; scheme: 'HTTP' | 'HTTPS' };
  resources: { requests: Record<string, string>; limits: Record<string, string> };
  extraVolumes?: Record<string, unknown>[];
  extraMounts?: Record<string, unknown>[];
}

function deployment(o: Common, p: PodSpecInput, why: string): Manifest {
  const name = NAME[p.component];
  const probe = (path: string, extra: Record<string, number>) => ({ httpGet: { path, port: p.probe.port, scheme: p.probe.scheme }, timeoutSeconds: 2, ...extra });
  const object: K8sObject = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: meta(name, p.component, o),
    spec: {
      replicas: 1,
      strategy: { type: 'Recreate' },
      selector: { matchLabels: selector(p.component) },
      template: {
        metadata: { labels: labels(p.component, o.version) },
        spec: {
          serviceAccountName: name,
          automountServiceAccountToken: true,
          securityContext: {
            runAsNonRoot: true,
            runAsUser: IMAGE_UID,
            runAsGroup: IMAGE_UID,
            fsGroup: IMAGE_UID,
            seccompProfile: { type: 'RuntimeDefault' },
          },
          terminationGracePeriodSeconds: 30,
          containers: [
            {
              name: p.component,
              image: o.image ?? defaultImage(o.version),
              imagePullPolicy: o.imagePullPolicy ?? 'IfNotPresent',
              args: p.args,
              env: [{ name: 'MESHFED_LOG_LEVEL', value: 'info' }],
              ports: p.ports.map((x) => ({ ...x, protocol: 'TCP' })),
              // Readiness: serving (the agent: with its view). Liveness: the process answers; it does not follow
              // readiness, since restarting an agent that waits for the hub would not bring the hub back.
              readinessProbe: probe('/readyz', { periodSeconds: 5, failureThreshold: 3 }),
              livenessProbe: probe('/healthz', { initialDelaySeconds: 10, periodSeconds: 10, failureThreshold: 6 }),
              resources: p.resources,
              securityContext: {
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                runAsNonRoot: true,
                capabilities: { drop: ['ALL'] },
              },
              volumeMounts: [{ name: 'data', mountPath: DATA_DIR }, { name: 'tmp', mountPath: '/tmp' }, ...(p.extraMounts ?? [])],
            },
          ],
          volumes: [{ name: 'data', persistentVolumeClaim: { claimName: `${name}-data` } }, { name: 'tmp', emptyDir: { sizeLimit: '64Mi' } }, ...(p.extraVolumes ?? [])],
        },
      },
    },
  };
  return m(object, why);
}

function disruptionBudget(component: 'hub' | 'agent', o: Common): Manifest {
  return m(
    {
      apiVersion: 'policy/v1',
      kind: 'PodDisruptionBudget',
      metadata: meta(NAME[component], component, o),
      spec: { maxUnavailable: 1, selector: { matchLabels: selector(component) }, unhealthyPodEvictionPolicy: 'AlwaysAllow' },
    },
    'One replica: minAvailable 1 would block every node drain forever, so a drain may move the pod (maxUnavailable 1).\n' +
      (component === 'agent' ? 'Meanwhile the data planes keep their last xDS configuration and traffic flows.' : 'Meanwhile agents keep serving their last view; the hub is not in the traffic path.'),
  );
}

function service(component: 'hub' | 'agent', o: Common, ports: { name: string; port: number; appProtocol?: string }[], type: string, comment: string): Manifest {
  return m(
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: meta(NAME[component], component, o),
      spec: {
        type,
        selector: selector(component),
        ports: ports.map((p) => ({ name: p.name, port: p.port, targetPort: p.name, protocol: 'TCP', ...(p.appProtocol ? { appProtocol: p.appProtocol } : {}) })),
      },
    },
    comment,
  );
}

/** The DNS names of the hub's Service inside its cluster, shortest first. */
export function hubServiceNames(namespace: string, clusterDomain = 'cluster.local'): string[] {
  const n = NAME.hub;
  return [n, `${n}.${namespace}`, `${n}.${namespace}.svc`, `${n}.${namespace}.svc.${clusterDomain}`];
}

const LABEL = new RegExp(DNS_LABEL);
const DNS_NAME = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const IP = /^[0-9.]+$|^[0-9a-f:]+$/i;
/** A Kubernetes quantity for storage: 1Gi, 500Mi, 10G. */
const QUANTITY = /^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$/;
/** An image reference: no whitespace, no scheme, bounded. */
const IMAGE = /^[a-z0-9][a-z0-9._\-/:@]{0,254}$/i;

function bad(field: string, value: string, why: string): MeshfedError {
  return new MeshfedError('usage', `${field}: "${value.slice(0, 100)}" ${why}`);
}

/** Checks what both installs take; every value lands in a manifest, so each is bounded and shaped. */
function checkCommon(o: Common): void {
  const ns = o.namespace ?? DEFAULT_NAMESPACE;
  if (!LABEL.test(ns) || ns.length > 63) throw bad('--namespace', ns, 'is not a Kubernetes namespace name (a DNS-1123 label: lower case, digits, -; at most 63)');
  if (o.image !== undefined && !IMAGE.test(o.image)) throw bad('--image', o.image, 'is not an image reference (e.g. ghcr.io/meshfed/meshfed:0.1.0)');
  if (o.storageSize !== undefined && !QUANTITY.test(o.storageSize)) throw bad('--storage-size', o.storageSize, 'is not a quantity (e.g. 1Gi, 500Mi)');
  if (o.storageClass !== undefined && !DNS_NAME.test(o.storageClass)) throw bad('--storage-class', o.storageClass, 'is not a StorageClass name');
}

/** `meshfed install hub`: CRDs (unless skipped), Namespace, RBAC, data volume, Deployment, PodDisruptionBudget, Service. */
export function hubManifests(o: HubInstallOptions): Manifest[] {
  checkCommon(o);
  if (o.clusterDomain !== undefined && !DNS_NAME.test(o.clusterDomain)) throw bad('--cluster-domain', o.clusterDomain, 'is not a DNS domain');
  for (const s of o.extraSans ?? []) if (!DNS_NAME.test(s) && !IP.test(s)) throw bad('--san', s, 'is neither a DNS name nor an IP address');
  const ns = o.namespace ?? DEFAULT_NAMESPACE;
  const sans = [...hubServiceNames(ns, o.clusterDomain), ...(o.extraSans ?? [])];
  const crdGrants = hubGrants(o.crds.map(crdResource));
  const args = ['hub', '--data-dir', DATA_DIR, '--listen', `0.0.0.0:${PORTS.hubApi}`, '--agent-listen', `0.0.0.0:${PORTS.hubChannel}`];
  for (const s of sans) args.push('--api-san', s, '--channel-san', s);
  args.push('--kubernetes-policies');
  return [
    ...(o.skipCrds ? [] : o.crds.map((c) => m(c as K8sObject))),
    namespaceObject(o),
    ...rbac('hub', o, crdGrants, 'Least privilege: reads the meshfed.io policy objects of this cluster (--kubernetes-policies) and patches their status; nothing else.'),
    dataClaim('hub', o),
    deployment(
      o,
      {
        component: 'hub',
        args,
        ports: [
          { name: 'api', containerPort: PORTS.hubApi },
          { name: 'channel', containerPort: PORTS.hubChannel },
        ],
        // The API is HTTPS (a certificate from the mesh CA naming the Service); the kubelet does not verify it.
        probe: { port: 'api', scheme: 'HTTPS' },
        resources: { requests: { cpu: '200m', memory: '512Mi' }, limits: { cpu: '2', memory: '2Gi' } },
      },
      'One replica, strategy Recreate: the hub store is single-writer (a lock in its data directory) until the hub runs highly available;\nRecreate stops the old pod before the new one opens the volume.',
    ),
    disruptionBudget('hub', o),
    service(
      'hub',
      o,
      [
        { name: 'api', port: PORTS.hubApi, appProtocol: 'https' },
        { name: 'channel', port: PORTS.hubChannel, appProtocol: 'grpc' },
      ],
      o.serviceType ?? 'ClusterIP',
      'The API (HTTPS, a certificate from the mesh CA naming this Service) and the agent channel (mTLS).\n' +
        'Agents in other clusters dial the channel: make it reachable (--service-type LoadBalancer, --san for its name).',
    ),
  ];
}

/** `meshfed install agent`: Namespace, RBAC, the join token Secret, data volume, Deployment, PodDisruptionBudget, Service. */
export function agentManifests(o: AgentInstallOptions): Manifest[] {
  checkCommon(o);
  if (!LABEL.test(o.cluster) || o.cluster.length > 63) throw bad('--cluster', o.cluster, 'is not a cluster name (a DNS-1123 label)');
  // HOST:PORT with a host: inside a pod, a bare port (loopback) would never reach the hub.
  if (!/^(?:\[[0-9a-f:.]+\]|[a-z0-9.-]+):[0-9]{1,5}$/i.test(o.hub)) throw bad('--hub', o.hub, "is not HOST:PORT (the hub's agent channel, e.g. hub.example.com:7401)");
  try {
    parseHostPort(o.hub, '--hub');
  } catch (err) {
    throw new MeshfedError('usage', errorMessage(err));
  }
  // Checked here so a wrong file (a certificate, an empty file) fails now, not at the agent's first start; the error never repeats the token.
  parseJoinToken(o.joinToken);
  const secretName = `${NAME.agent}-join-token`;
  return [
    namespaceObject(o),
    ...rbac(
      'agent',
      o,
      AGENT_GRANTS,
      'Least privilege: reads what discovery needs; writes only ServiceImports and EndpointSlices, their status and Events.\n' +
        'RBAC cannot restrict a rule by label: the agent itself writes and deletes only the objects labelled as its own.',
    ),
    m(
      {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { ...meta(secretName, 'agent', o), annotations: { 'meshfed.io/cluster': o.cluster } },
        type: 'Opaque',
        data: { token: Buffer.from(o.joinToken, 'utf8').toString('base64') },
      },
      "The one-time join token, mounted as a file (--join-token-file). Redeemed at the agent's first start;\nafterwards the agent's client certificate in its data volume is its credential.",
    ),
    dataClaim('agent', o),
    deployment(
      o,
      {
        component: 'agent',
        args: [
          'agent',
          '--cluster',
          o.cluster,
          '--hub',
          o.hub,
          '--kubernetes',
          '--xds-listen',
          `0.0.0.0:${PORTS.agentXds}`,
          '--api-listen',
          `0.0.0.0:${PORTS.agentApi}`,
          '--data-dir',
          DATA_DIR,
          '--join-token-file',
          JOIN_TOKEN_FILE,
        ],
        ports: [
          { name: 'xds', containerPort: PORTS.agentXds },
          { name: 'api', containerPort: PORTS.agentApi },
        ],
        // The agent API is plain HTTP (docs/kubernetes.md#install says what that means in a cluster).
        probe: { port: 'api', scheme: 'HTTP' },
        resources: { requests: { cpu: '100m', memory: '256Mi' }, limits: { cpu: '2', memory: '1Gi' } },
        extraVolumes: [{ name: 'join-token', secret: { secretName, defaultMode: 0o400 } }],
        extraMounts: [{ name: 'join-token', mountPath: JOIN_TOKEN_DIR, readOnly: true }],
      },
      "One replica, strategy Recreate: the data directory holds the cluster's one agent identity and is single-writer;\nRecreate stops the old pod before the new one opens the volume.",
    ),
    disruptionBudget('agent', o),
    service(
      'agent',
      o,
      [
        { name: 'xds', port: PORTS.agentXds, appProtocol: 'grpc' },
        { name: 'api', port: PORTS.agentApi, appProtocol: 'http' },
      ],
      'ClusterIP',
      'xDS for the data planes of this cluster (plaintext gRPC; workloads use mTLS between themselves) and the agent API (plain HTTP,\nevery route but the probes needs a credential). In-cluster only: keep it ClusterIP, and restrict it with a NetworkPolicy if your CNI enforces them.',
    ),
  ];
}

/** The group, plural and status subresource of a CustomResourceDefinition (as crdFor makes them). */
function crdResource(crd: Record<string, unknown>): { group: string; plural: string; hasStatus: boolean } {
  const spec = crd.spec as { group: string; names: { plural: string }; versions: { subresources?: { status?: unknown } }[] };
  return { group: spec.group, plural: spec.names.plural, hasStatus: spec.versions.some((v) => v.subresources?.status !== undefined) };
}

/** Several objects as one document: a Kubernetes List (`-o json`), which kubectl apply takes. */
export function kubeList(items: readonly K8sObject[]): { apiVersion: 'v1'; kind: 'List'; metadata: Record<string, never>; items: readonly K8sObject[] } {
  return { apiVersion: 'v1', kind: 'List', metadata: {}, items };
}
