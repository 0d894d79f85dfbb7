// The hub process: the store, the HTTP API and the agent channel. It is not in
// the traffic path: data planes talk only to their cluster's agent.
// The HTTP API is HTTPS by default (a certificate from the mesh CA, or the
// user's --api-cert/--api-key) and every route but /healthz and /readyz needs a
// credential; plain HTTP only with --insecure-api, on a loopback address.
// A first start writes the one admin credential (<data dir>/admin.meshfed.yaml):
// of replicas on one store starting together, only the one that created the
// credential records. Everything the hub keeps is in its stores
// (store/location.ts), so replicas on one etcd share it; the generated root
// keys are sealed there with the state key (state-key.ts).
// With kubernetesPolicies, the policy objects (and the Mesh) also come from
// custom resources in the hub's own cluster (kubernetes-policies.ts).
// Several hubs may share one etcd store: every replica serves the API, the
// elected leader (leadership.ts) the agent channel and the singletons
// (leader-duties.ts).
import * as grpc from '@grpc/grpc-js';
import type { Server } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import { agentChannelServerService, MAX_AGENT_MESSAGE_BYTES, type JoinRequest, type JoinResponse } from '../channel/protocol.js';
import { describeLocation, openHubStores, type StoreLocation } from '../store/location.js';
import type { Store } from '../store/store.js';
import { describeListenError, formatHostPort, type HostPort } from '../util/address.js';
import { errorMessage, grpcCodeOf, MeshfedError } from '../util/errors.js';
import { logger } from '../util/log.js';
import { FailureLimiter, TokenAuthenticator } from '../auth/authn.js';
import { CertificateAuthenticator, FirstOfAuthenticator } from '../auth/authn-cert.js';
import { BuiltinAuthorizer } from '../auth/authorizer.js';
import { RbacAuthorizer } from '../auth/rbac-authorizer.js';
import { CredentialStore } from '../auth/credentials.js';
import type { AuditSink } from '../auth/types.js';
import { AuditLog } from '../audit/log.js';
import { RateLimiter } from '../util/rate-limit.js';
import { AgentSessions } from './agent-sessions.js';
import { ClusterLiveness } from './cluster-liveness.js';
import { ApiCertificate, apiHosts, writeAdminCredential, type ApiTlsMaterial, type UserApiCertificate } from './api-security.js';
import { createHubHttpServer } from './http-api.js';
import { missingStateKey, stateKeyFor } from './state-key.js';
import { HubTrust, type ExternalCa } from './trust.js';
import type { KubernetesPoliciesOptions, KubernetesPolicySource } from './kubernetes-policies.js';
import { LeaderDuties } from './leader-duties.js';
import { replicaId, startLeadership, type Leadership } from './leadership.js';
import { meshfedVersion } from '../util/version.js';

const log = logger('hub');

/** Join attempts per remote address: a burst of 20, then one a second (a fleet joins once per cluster; guessing tokens is slowed). */
const JOIN_RATE = { perSecond: 1, burst: 20, maxKeys: 10_000 };

export interface HubOptions {
  dataDir: string;
  /** Where the stores live (--store; default the embedded FileStore in dataDir): store/location.ts. */
  store?: StoreLocation;
  /** The state key file (--state-key-file): seals the generated root keys in the store; every replica needs the same. */
  stateKeyFile?: string;
  api: HostPort;
  agents: HostPort;
  /**
   * Coalescing window for view changes sent to agents: the first change after a
   * quiet period goes out at once, later ones at most once per window.
   */
  viewDebounceMs?: number;
  /** Plaintext agent channel, no agent authentication: development and benchmarks only. */
  insecureChannel?: boolean;
  /** A user-supplied mesh CA (an intermediate of the user's root) instead of a generated root. */
  externalCa?: ExternalCa;
  /** Extra DNS names / IPs for the channel certificate (what agents dial). */
  channelHosts?: string[];
  /** Lifetime of agents' channel certificates (default 720h). */
  agentCertTtlMs?: number;
  /** Plain-HTTP API (--insecure-api): loopback addresses only, with a warning. Credentials are still required. */
  insecureApi?: boolean;
  /** The user's API certificate and key instead of one from the mesh CA. */
  apiCertificate?: UserApiCertificate;
  /** Extra DNS names / IPs the API answers to (Host checks, certificate SANs). */
  apiHosts?: string[];
  /** Where audit records go (default: the hub's log). */
  audit?: AuditSink;
  /** Failed authentications per remote address per minute before 429 (default 20). */
  authFailureLimit?: number;
  /** Take policy objects and the Mesh from custom resources in this Kubernetes cluster (GitOps). */
  kubernetesPolicies?: KubernetesPoliciesOptions;
  /** The leader's lease TTL with an etcd store (--leader-lease; default 2000 ms, whole seconds). */
  leaderLeaseMs?: number;
  /** This replica's id in the election (default: host name and a random suffix). */
  replicaId?: string;
}

/** A loopback listen address (where plain HTTP may be allowed). */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

export class Hub {
  private constructor(
    readonly store: Store,
    private readonly http: Server,
    private readonly apiCert: ApiCertificate | undefined,
    private readonly grpcServer: grpc.Server,
    readonly sessions: AgentSessions,
    readonly trust: HubTrust,
    readonly apiAddress: HostPort,
    readonly agentAddress: HostPort,
    /** Every write and denial, hash-chained (src/audit), in a store of its own. */
    readonly auditLog: AuditLog,
    private readonly auditStore: Store,
    private readonly credentials: CredentialStore,
    /** What only the leader runs (the agent channel, liveness, the Kubernetes source of policies). */
    readonly duties: LeaderDuties,
    private readonly setNotReady: (reason: string | undefined) => void,
  ) {}

  static async start(opts: HubOptions): Promise<Hub> {
    if (opts.insecureApi && !isLoopback(opts.api.host)) {
      throw new MeshfedError('usage', `--insecure-api serves the API in plain HTTP: refused on ${opts.api.host}, which is not a loopback address (use 127.0.0.1, or serve TLS)`);
    }
    if (opts.insecureApi && opts.apiCertificate) throw new MeshfedError('usage', '--insecure-api and --api-cert: give one');
    const location: StoreLocation = opts.store ?? { kind: 'file', dir: opts.dataDir };
    const sharedStore = location.kind === 'etcd' ? describeLocation(location) : undefined;
    // Said before connecting; the key itself is read (or generated) once the file store's lock is held.
    if (opts.stateKeyFile === undefined && sharedStore !== undefined && !opts.externalCa) throw missingStateKey(sharedStore);
    const { main: store, audit: auditStore } = await openHubStores(location, { serving: true });
    let trust: HubTrust | undefined;
    let auditLog: AuditLog | undefined;
    let credentials: CredentialStore | undefined;
    let firstStart = false;
    try {
      const stateKey = await stateKeyFor({ ...(opts.stateKeyFile !== undefined ? { file: opts.stateKeyFile } : {}), dataDir: opts.dataDir, needed: !opts.externalCa, sharedStore });
      trust = await HubTrust.open({
        dataDir: opts.dataDir,
        store,
        ...(stateKey ? { stateKey } : {}),
        ...(opts.externalCa ? { external: opts.externalCa } : {}),
        channelHosts: [opts.agents.host, ...(opts.channelHosts ?? [])].filter((h) => h !== '0.0.0.0' && h !== '::'),
        agentCertTtlMs: opts.agentCertTtlMs ?? 720 * 3_600_000,
      });
      auditLog = await AuditLog.open(auditStore);
      ({ store: credentials, created: firstStart } = await CredentialStore.open(store));
    } catch (err) {
      trust?.close();
      await auditLog?.close();
      await auditStore.close();
      await store.close();
      throw err;
    }
    const secure = !opts.insecureChannel;
    // Started by the leader duties, on this replica's takeover.
    const liveness = new ClusterLiveness(store);
    const sessions = new AgentSessions(store, { viewDebounceMs: opts.viewDebounceMs ?? 20, trust, secure, liveness });
    const hosts = apiHosts(opts.api.host, opts.apiHosts ?? []);
    let apiCert: ApiCertificate | undefined;
    let tls: ApiTlsMaterial | undefined;
    // User client certificates chain to the mesh roots (as at start; a root rotation is not followed with a user-supplied API certificate).
    if (opts.apiCertificate) tls = { cert: opts.apiCertificate.certPem, key: opts.apiCertificate.keyPem, caPem: '', clientCaPem: trust.bundlePem() };
    else if (!opts.insecureApi) {
      apiCert = await ApiCertificate.issue(trust, hosts);
      tls = apiCert.tls;
    }
    const k8sOpts = opts.kubernetesPolicies;
    const startKubernetesPolicies = k8sOpts
      ? async (): Promise<KubernetesPolicySource> => (await import('./kubernetes-policies.js')).KubernetesPolicySource.start(store, opts.audit ?? auditLog, k8sOpts)
      : undefined;
    const duties = new LeaderDuties({ liveness, sessions, ...(startKubernetesPolicies ? { startKubernetesPolicies } : {}) });
    let leadership: Leadership | undefined;
    // The superuser group first, then Roles and RoleBindings from the store.
    const rbac = new RbacAuthorizer(store);
    const api = createHubHttpServer(store, sessions, trust, secure, {
      // A verified user client certificate first, else the bearer token.
      authenticator: new FirstOfAuthenticator(new CertificateAuthenticator(credentials, () => trust.trustDomain()), new TokenAuthenticator(credentials)),
      authorizer: new BuiltinAuthorizer(rbac),
      rbac,
      audit: opts.audit ?? auditLog,
      auditLog,
      credentials,
      limiter: new FailureLimiter(opts.authFailureLimit ?? 20, 60_000),
      hosts: new Set(hosts.map((h) => h.toLowerCase())),
      ...(tls ? { tls } : {}),
      ...(k8sOpts ? { kubernetesPolicies: { status: () => duties.kubernetesPolicies?.status() ?? { leader: false } } } : {}),
      replicas: async () => ({ self: leadership?.self.id, leader: leadership?.leader(), items: (await leadership?.replicas()) ?? [] }),
    });
    const http = api.server;
    apiCert?.attach(http as unknown as HttpsServer);
    if (opts.insecureApi) {
      log.warn('THE HUB API IS PLAIN HTTP (--insecure-api): credentials cross the wire unencrypted. Loopback development and benchmarks only.');
    }
    const grpcServer = new grpc.Server({
      'grpc.keepalive_permit_without_calls': 1,
      // A full report is one message (a whole cluster); views go out in chunks of well under 1 MiB.
      'grpc.max_receive_message_length': MAX_AGENT_MESSAGE_BYTES,
      'grpc.max_send_message_length': -1,
    });
    grpcServer.addService(agentChannelServerService(), duties.gate({ ...sessions.handler(), Join: joinHandler(trust, secure) }));
    if (!secure) {
      log.warn(
        "THE AGENT CHANNEL IS INSECURE (--insecure-channel): plaintext, and agents are not authenticated: anything that reaches it can pose as any cluster and get that cluster's intermediate CA. Development and benchmarks only.",
      );
    }
    try {
      await new Promise<void>((resolve, reject) => {
        http.once('error', reject);
        http.listen(opts.api.port, opts.api.host, () => {
          http.off('error', reject);
          resolve();
        });
      }).catch((err: unknown) => {
        throw describeListenError(err, 'hub API', formatHostPort(opts.api));
      });
      const apiPort = (http.address() as { port: number }).port;
      api.setPort(apiPort);
      const apiUrl = `${tls ? 'https' : 'http'}://${formatHostPort({ host: opts.api.host === '0.0.0.0' || opts.api.host === '::' ? '127.0.0.1' : opts.api.host, port: apiPort })}`;
      if (firstStart) await writeAdminCredential(opts.dataDir, credentials, apiUrl, tls ? tls.caPem || undefined : undefined);
      const agentPort = await new Promise<number>((resolve, reject) => {
        grpcServer.bindAsync(formatHostPort(opts.agents), secure ? trust.serverCredentials() : grpc.ServerCredentials.createInsecure(), (err, port) =>
          err ? reject(describeListenError(err, 'hub agent channel', formatHostPort(opts.agents))) : resolve(port),
        );
      });
      const agentsAt = formatHostPort({ host: opts.agents.host, port: agentPort });
      leadership = await startLeadership(
        store,
        { id: opts.replicaId ?? replicaId(), api: apiUrl, agents: agentsAt, version: meshfedVersion(), startedAt: new Date().toISOString() },
        { leaseMs: opts.leaderLeaseMs ?? 2000 },
      );
      await duties.follow(leadership);
      const hub = new Hub(
        store,
        http,
        apiCert,
        grpcServer,
        sessions,
        trust,
        { host: opts.api.host, port: apiPort },
        { host: opts.agents.host, port: agentPort },
        auditLog,
        auditStore,
        credentials,
        duties,
        api.setNotReady,
      );
      // Both listeners are up: /readyz answers 200 from now on (while the store takes writes).
      api.setNotReady(undefined);
      log.info('hub started', {
        api: apiUrl,
        agents: formatHostPort(hub.agentAddress),
        channel: secure ? 'mTLS' : 'INSECURE',
        trustDomain: trust.trustDomain(),
        dataDir: opts.dataDir,
        revision: store.revision(),
        replica: leadership.self.id,
        role: leadership.isLeader() ? 'leader' : 'standby',
      });
      return hub;
    } catch (err) {
      http.close();
      apiCert?.close();
      grpcServer.forceShutdown();
      await leadership?.stop();
      liveness.stop();
      trust.close();
      credentials.close();
      await auditLog.close();
      await auditStore.close();
      await store.close();
      throw err;
    }
  }

  /** The Kubernetes source of policies (--kubernetes-policies) while this replica leads. */
  get kubernetesPolicies(): KubernetesPolicySource | undefined {
    return this.duties.kubernetesPolicies;
  }

  async stop(): Promise<void> {
    this.setNotReady('stopping');
    this.apiCert?.close();
    this.trust.close();
    this.credentials.close();
    this.sessions.closeAll();
    this.sessions.liveness.stop();
    this.grpcServer.forceShutdown();
    this.http.closeAllConnections();
    await new Promise<void>((r) => this.http.close(() => r()));
    // The disconnects closeAll() recorded are written before the store closes.
    await this.sessions.liveness.settled();
    // Steps down (the Kubernetes source stops) and revokes the lease: a standby takes over at once.
    await this.duties.leadership?.stop();
    await this.auditLog.close();
    await this.auditStore.close();
    await this.store.close();
    log.info('hub stopped');
  }
}

/** Join: a token and a CSR in, the agent's channel certificate out; refusals name what is wrong. */
function joinHandler(trust: HubTrust, secure: boolean): grpc.handleUnaryCall<JoinRequest, JoinResponse> {
  const limiter = new RateLimiter(JOIN_RATE);
  return (call, callback) => {
    const from = peerAddress(call.getPeer());
    const allowed = limiter.take(from);
    if (!allowed.allowed) {
      log.warn('join rate-limited', { from, cluster: call.request.cluster, retryAfterSeconds: allowed.retryAfterSeconds });
      const err = new MeshfedError('rate-limited', `too many join attempts from ${from}: retry in ${allowed.retryAfterSeconds}s`);
      callback({ code: err.grpcCode, details: err.message });
      return;
    }
    if (!secure) {
      callback({ code: grpc.status.FAILED_PRECONDITION, details: 'this hub runs with --insecure-channel: agents connect without a join token (start the agent with --insecure-channel)' });
      return;
    }
    trust.redeemJoinToken(call.request).then(
      (res) => callback(null, res),
      (err: unknown) => {
        // The token id is not secret (the secret is never logged); it lets an operator find the token.
        log.warn('join refused', { cluster: call.request.cluster, token: call.request.tokenId, reason: err instanceof MeshfedError ? err.reason : 'Internal', message: errorMessage(err) });
        callback({ code: grpcCodeOf(err), details: errorMessage(err) });
      },
    );
  };
}

/** The address of a gRPC peer ("ipv4:1.2.3.4:5678", "[::1]:5678", ...) without its port: the rate-limit key. */
function peerAddress(peer: string): string {
  const p = peer.replace(/^(ipv4|ipv6|unix):/, '');
  const v6 = /^\[(.*)\]:\d+$/.exec(p);
  if (v6) return v6[1]!;
  const m = /^(.*):\d+$/.exec(p);
  return m ? m[1]! : p;
}
