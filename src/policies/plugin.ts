// The policy plugin contract. A policy kind is one folder under src/policies/
// whose plugin.ts exports a PolicyPlugin: its API kind (schema, validation),
// how it resolves for one service (precedence), its status, and its hooks into
// each output. The translation (src/translate/<output>) drives the hooks and
// knows no kind by name; the composition root (src/registry.ts) lists the
// plugins once, and the API registry, the policy kinds, the kinds agents
// receive and the agent's recompute rules derive from that list.
//
// This file also holds the inputs the xDS hooks see (ClientContext, Backend,
// ServerContext, ServerTarget) and the two containers every caller passes
// around: PolicySet (the policies of a view, by plugin, oldest first) and
// ResolvedPolicies (what applies to one service, by plugin). Pure types and
// containers: no I/O, nothing kind-specific.
import type { FieldError, KindDef, MtlsMode, SecuritySettings, ServicePort } from '../api/index.js';
import type { FederatedView, GlobalService, ServicePart } from '../federation/types.js';
import { byAge, type PolicyObject } from './common.js';

/** A field of a policy that lost to an older policy for one service. */
export interface PolicyConflict {
  policy: string;
  service: string;
  field: string;
  winner: string;
  message: string;
}

/** A resolved value and the policy it came from ("TrafficPolicy ns/name"). */
export interface Winner<T> {
  value: T;
  from: string;
}

/** Status of one policy, computed at read time from a federated view (hub, plan). */
export interface PolicyStatusOut {
  services: string[];
  clusters: string[];
  conflicts: { service: string; field: string; winner: string; message: string }[];
  problems: FieldError[];
  /** Server-side kinds: the workloads that enforce it (cluster/namespace/workload (service)). */
  destinations?: string[];
  /** Server-side kinds: the identities (or patterns) it matches. */
  sources?: string[];
}

/** What status computation knows besides the view and the policies. */
export interface StatusEnv {
  security: SecuritySettings;
  accessDefault: 'ALLOW' | 'DENY';
  /** What the hub knows of the data planes: see ProxyFacts. */
  proxies?: ProxyFacts;
}

/**
 * Facts about the fleet's proxies the hub learnt from proxy-status reports,
 * for the checks of plan and apply. Partial by nature: only proxies that are
 * connected and have shown a trait (e.g. NACKed an RBAC filter) are in it.
 */
export interface ProxyFacts {
  /** Workloads ("cluster/namespace/workload") whose gRPC server rejected RBAC filters. */
  serversWithoutRbac: ReadonlySet<string>;
}

/** Records that `policy`'s `field` lost to the older `winner` for the service being resolved. */
export type LoseFn<O> = (policy: O, field: string, winner: string) => void;

/**
 * What one xDS translation for one agent knows besides the view. Builders and
 * hooks read the resolved policies through the Backend and mTLS from `security`.
 */
export interface ClientContext {
  /** The cluster whose agent serves these resources. */
  cluster: string;
  /** Region and zones of that cluster: where failover tiers (same zone, same region) are measured from. */
  locality?: { region: string; zones: string[] };
  /** Every policy of the view, oldest first, and the plugins whose hooks shape the output (`policySet([])`: no policy). */
  policies: PolicySet;
  /** Trust domain and mTLS modes (from the Mesh). Unset: plaintext everywhere. */
  security?: SecuritySettings;
}

/** A split target (a subset backend) a plugin asks for: one extra xDS cluster and assignment. */
export interface BackendSubset {
  name: string;
  cluster?: string;
  subset?: Record<string, string>;
}

/**
 * What one xDS cluster balances over: one port of a global service or of one
 * cluster's part. Every builder and hook works from it.
 */
export interface Backend {
  /** xDS cluster (and ClusterLoadAssignment) name: outbound|PORT||HOST. */
  clusterName: string;
  /** Host in the cluster name: the global hostname, or a part's per-cluster hostname. */
  host: string;
  service: GlobalService;
  port: ServicePort;
  /** Parts whose endpoints are balanced over, in cluster-name order. */
  parts: ServicePart[];
  /** Set when the backend is one cluster's part (its per-cluster hostname). */
  part?: ServicePart;
  /** Policies in effect for this service and the agent's clients (after precedence). */
  policy?: ResolvedPolicies;
  /** True for the global hostnames (where routes and failover apply). */
  global?: boolean;
  /** Set for a split target: only endpoints in this cluster and/or with these labels. */
  subset?: BackendSubset;
}

/** A locality of a ClusterLoadAssignment, as priority hooks see it. */
export interface LocalityRef {
  cluster: string;
  region: string;
  zone: string;
}

/** A workload's server listener: what server-side policies are matched against. */
export interface ServerTarget {
  cluster: string;
  namespace: string;
  service: string;
  workload: string;
  /** Labels of the Service in the workload's cluster. */
  serviceLabels: Record<string, string>;
  /** Service ports the listener serves (a workload port may serve several). */
  ports: { name: string; port: number }[];
  /** mTLS mode of the service: identities exist only in STRICT. */
  mode: MtlsMode;
}

/** A workload of the view as identity sources (labels) see it. */
export interface WorkloadIdentityRef {
  cluster: string;
  namespace: string;
  serviceAccount: string;
  labels: Record<string, string>;
}

/** What server-listener hooks know besides the target. */
export interface ServerContext {
  trustDomain: string;
  accessDefault: 'ALLOW' | 'DENY';
  /** Every workload of the view; computed once per recompute, and only when a hook asks. */
  identities: () => Iterable<WorkloadIdentityRef>;
}

/** An xDS HTTP filter in fromObject form ({name, typed_config}). */
export type HttpFilter = Record<string, unknown>;
/** A route entry of a RouteConfiguration's virtual host, fromObject form. */
export type RouteEntry = Record<string, unknown>;

/**
 * A plugin's xDS hooks. Each gets the plugin's own resolved value for the
 * backend (undefined when none of its policies applies) and may be called for
 * every backend, so it must return the plain default when there is nothing.
 */
export interface XdsHooks<O, R> {
  /** HTTP filters of every client listener, before the router (which stays last). */
  clientHttpFilters?(ctx: ClientContext): HttpFilter[];
  /** Subset backends a global backend needs (each becomes a Cluster and an assignment). */
  subsets?(backend: Backend, resolved: R | undefined): BackendSubset[];
  /** The routes of a backend's RouteConfiguration, given the routes so far (starting with the default route). */
  routes?(ctx: ClientContext, backend: Backend, resolved: R | undefined, routes: RouteEntry[]): RouteEntry[];
  /** Fields this plugin adds to the backend's Cluster. */
  clusterFields?(ctx: ClientContext, backend: Backend, resolved: R | undefined): Record<string, unknown>;
  /** Locality priorities of the backend's assignment (contiguous from 0), or undefined to leave them at 0. */
  priorities?(ctx: ClientContext, backend: Backend, resolved: R | undefined, localities: LocalityRef[]): number[] | undefined;
  /** HTTP filters of a workload's server listener, before the router. `policies`: this plugin's, oldest first. */
  serverHttpFilters?(ctx: ServerContext, target: ServerTarget, policies: readonly O[]): HttpFilter[];
  /** Whether serverHttpFilters can return anything (lets the agent skip the work when nothing restricts servers). */
  serverActive?(ctx: Pick<ServerContext, 'accessDefault'>, policies: readonly O[]): boolean;
  /** Whether server filters depend on the view's workloads (e.g. label sources): then any workload change re-evaluates them. */
  serverReadsWorkloads?(policies: readonly O[]): boolean;
  /** What to do about a NACK of this plugin's output, when the message shows it is one (proxy-status hints). */
  nackHint?(typeUrl: string, message: string): string | undefined;
}

export interface PolicyPlugin<O extends PolicyObject = PolicyObject, R = unknown> {
  /** The API kind: schema, defaults, validation, columns, CRD. */
  readonly kind: KindDef;
  /**
   * Which output a change of one of its objects affects: `client` (the
   * resources of the services it selects, by destinations) or `server` (the
   * server listeners of the workloads it selects).
   */
  readonly enforcedBy: 'client' | 'server';
  /**
   * What applies to one service for clients in one cluster, after precedence
   * (oldest wins; losers are reported through `lose`). `policies` is this
   * plugin's, oldest first. Client-side kinds only.
   */
  resolve?(policies: readonly O[], service: GlobalService, sourceCluster: string, lose: LoseFn<O>): R | undefined;
  /** Status of each of its policies against a view (conflicts are added from `resolve`). */
  status(view: FederatedView, policies: readonly O[], env: StatusEnv): Map<string, PolicyStatusOut>;
  /** Hooks into the xDS output. */
  readonly xds?: XdsHooks<O, R>;
  /**
   * The finer actions an object of this kind uses, for authorization (a Role
   * rule that lists actions allows only objects whose every action it lists):
   * e.g. a TrafficPolicy with a route fault uses 'fault-injection'. Unset: the
   * kind has no finer actions.
   */
  actionsOf?(object: O): string[];
}

/** A plugin of any kind, as lists hold them. */
// The object and resolved types are erased in lists; each plugin's own code is typed.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyPolicyPlugin = PolicyPlugin<any, any>;

/** The policies of a view, by plugin, each list oldest first (the precedence order). */
export class PolicySet {
  private readonly lists = new Map<string, PolicyObject[]>();

  constructor(
    readonly plugins: readonly AnyPolicyPlugin[],
    objects: Iterable<{ kind: string }> = [],
  ) {
    for (const p of plugins) this.lists.set(p.kind.kind, []);
    for (const o of objects) this.lists.get(o.kind)?.push(o as PolicyObject);
    for (const l of this.lists.values()) l.sort(byAge);
  }

  /** The plugin's policies, oldest first. */
  of<O extends PolicyObject>(plugin: PolicyPlugin<O, unknown>): readonly O[] {
    return (this.lists.get(plugin.kind.kind) ?? []) as O[];
  }

  get size(): number {
    let n = 0;
    for (const l of this.lists.values()) n += l.length;
    return n;
  }
}

/** What applies to one service for clients in one cluster, by plugin (after precedence). */
export class ResolvedPolicies {
  private readonly values = new Map<string, unknown>();

  set(plugin: AnyPolicyPlugin, value: unknown): void {
    this.values.set(plugin.kind.kind, value);
  }

  /** The plugin's resolved value, undefined when none of its policies applies. */
  get<R>(plugin: PolicyPlugin<PolicyObject, R> | PolicyPlugin<never, R>): R | undefined {
    return this.values.get(plugin.kind.kind) as R | undefined;
  }

  /** By kind name, for hooks driven generically. */
  byKind(kind: string): unknown {
    return this.values.get(kind);
  }

  get empty(): boolean {
    return this.values.size === 0;
  }
}
