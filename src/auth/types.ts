// The shapes the hub's and agent's API security is built from, shared by
// authentication (who is calling: src/auth/authn*), authorization (may they:
// src/auth/rbac*, Role and RoleBinding) and the audit log (what happened:
// src/audit). Pure types: the API routers (src/hub/http-api.ts,
// src/agent/http-api.ts) authenticate every request except health checks,
// authorize it against one Permission per route, and audit every write and
// every denial.

/** Who is calling, once authenticated. */
export interface Principal {
  /** user: a person or automation with a hub-issued credential; agent: a cluster's agent (channel certificate). */
  kind: 'user' | 'agent';
  /** User name (e.g. "admin", "alice"), or the agent's cluster name. */
  name: string;
  /** Groups the credential carries; RoleBindings may name a group. */
  groups: string[];
  /** How the credential was presented. */
  via: 'certificate' | 'token';
  /** The credential's id (token id or certificate serial), for the audit log; never the secret. */
  credentialId: string;
  /**
   * A scoped token's scope (`verb`, `verb:kind`, `*:kind`): the token may be
   * used only for these, whatever its user may do. Absent: no restriction.
   */
  scope?: string[];
}

/**
 * What a request asks to do. One per route; writes of several objects ask one
 * Permission per object (all must be allowed, or nothing is written).
 *
 * verb: read | create | update | delete for objects; for hub operations the
 * verb names the operation and `kind` the area, e.g.
 *   {verb: 'mint-join-token', kind: 'Cluster', name}   meshfed cluster add
 *   {verb: 'rotate-root', kind: 'Trust'}              meshfed trust rotate-root
 *   {verb: 'read', kind: 'Trust'}                     meshfed trust status
 *   {verb: 'plan' | 'explain', kind: <kind>}          dry runs
 *   {verb: 'read', kind: 'Audit'}                     meshfed audit
 *   {verb: 'gc' | 'read', kind: 'Hub'}                the hub process
 *   {verb: 'mint-identity-token', kind: 'Identity', namespace, name: serviceAccount}   the agent's identity tokens
 */
export interface Permission {
  verb: string;
  kind: string;
  namespace?: string;
  cluster?: string;
  name?: string;
  /**
   * Finer actions the object uses, for kinds that have them (a TrafficPolicy
   * that injects faults asks 'fault-injection' besides 'traffic-shift'); a
   * Role rule that lists actions allows only those.
   */
  actions?: string[];
  /** The object written (for selector-scoped rules: destinations, workloads). */
  object?: unknown;
}

export interface Decision {
  allowed: boolean;
  /** Why, in words: the Role and RoleBinding that allowed it, or what is missing. */
  reason: string;
}

/** One audit record: every write (allowed or not) and every denied request. */
export interface AuditRecord {
  /** ISO time at the hub. */
  time: string;
  /** The principal ("user:alice", "agent:cluster1"), or "anonymous" for a request without a valid credential. */
  who: string;
  credentialId?: string;
  /** Remote address and port. */
  from: string;
  /** HTTP method and path (no query secrets). */
  request: string;
  verb: string;
  kind: string;
  /** "ns/name", "name" or "" for hub operations. */
  object: string;
  outcome: 'allowed' | 'denied' | 'failed';
  /** Why denied or failed. */
  reason?: string;
  /** For writes: a unified-style diff of the object (secrets never included). */
  diff?: string[];
  /** Store revision of the write, when it committed. */
  revision?: number;
}

/** Where the routers send audit records; persisted before the request is answered. */
export interface AuditSink {
  record(r: AuditRecord): Promise<void>;
}
