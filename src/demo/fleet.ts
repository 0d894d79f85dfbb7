// A local fleet of real processes: a hub, one agent per cluster, sample gRPC
// xDS servers and clients. The demo runs one; the end-to-end tests run many.
// The hub API is HTTPS with credentials: the fleet reads the admin token the
// hub wrote at first start (<hub data dir>/admin.meshfed.yaml) and the current
// CA bundle (<hub data dir>/ca/bundle.pem, current across root rotations), and
// each agent's admin token (<agent data dir>/agent-admin.token); hubFetch and
// agentFetch send them, and cliEnv() gives spawned CLI processes a config.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { API_VERSION, type ApiObject } from '../api/index.js';
import type { AgentStatus } from '../agent/agent.js';
import type { Registration } from '../discovery/registration.js';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { apiFetch, type ApiFetchInit } from '../cli/http.js';
import type { CliConfig } from '../cli/config.js';
import { freePort, meshfedBin, ProcessGroup, sampleProgram, waitHttp, type Child } from './processes.js';

export interface ClusterSpec {
  name: string;
  network: string;
  region: string;
  zones: string[];
}

export const DEMO_CLUSTERS: ClusterSpec[] = [
  { name: 'cluster1', network: 'net1', region: 'us-east1', zones: ['us-east1-a'] },
  { name: 'cluster2', network: 'net1', region: 'us-east1', zones: ['us-east1-b'] },
  { name: 'cluster3', network: 'net1', region: 'us-west1', zones: ['us-west1-a'] },
];

export function clusterObject(c: ClusterSpec): ApiObject {
  return { apiVersion: API_VERSION, kind: 'Cluster', metadata: { name: c.name }, spec: { network: c.network, region: c.region, zones: c.zones } };
}

/** The helloworld service port in every cluster (each workload listens on its own port). */
export const HELLOWORLD_PORT = 50051;

export interface AgentHandle {
  cluster: ClusterSpec;
  child: Child;
  xdsPort: number;
  apiUrl: string;
  dataDir: string;
}

export interface ServerHandle {
  child: Child;
  cluster: string;
  name: string;
  address: string;
}

export interface FleetOptions {
  echoStderr?: boolean;
  /** Hub and agents with --insecure-channel (no join tokens, plaintext channel). Default: mTLS with join tokens. */
  insecureChannel?: boolean;
  /** Hub with --insecure-api (plain HTTP; credentials still required). Default: HTTPS. */
  insecureApi?: boolean;
}

export class LocalFleet {
  readonly procs: ProcessGroup;
  hub: Child | undefined;
  hubUrl = '';
  hubAgentAddr = '';
  readonly agents = new Map<string, AgentHandle>();
  /** Join tokens made for clusters (by addCluster or startAgent), used by the next startAgent. */
  readonly tokens = new Map<string, string>();
  readonly insecureChannel: boolean;
  readonly insecureApi: boolean;
  /** The hub's admin token (from admin.meshfed.yaml), once the hub started. */
  adminToken = '';
  private hubPorts: { api: number; agents: number } | undefined;

  private constructor(
    readonly dir: string,
    opts: FleetOptions,
  ) {
    this.insecureChannel = opts.insecureChannel === true;
    this.insecureApi = opts.insecureApi === true;
    this.procs = new ProcessGroup({ echoStderr: opts.echoStderr ?? false, prefixStderr: true, logDir: join(dir, 'logs') });
  }

  /** Where every process's stderr is kept (<name>.log). */
  get logDir(): string {
    return join(this.dir, 'logs');
  }

  static async create(opts: FleetOptions = {}): Promise<LocalFleet> {
    const dir = await mkdtemp(join(tmpdir(), 'meshfed-'));
    const fleet = new LocalFleet(dir, opts);
    // Whatever happens, never leave processes behind.
    process.once('exit', () => fleet.procs.killAllNow());
    return fleet;
  }

  env(): Record<string, string> {
    return { MESHFED_LOG_LEVEL: process.env.MESHFED_LOG_LEVEL ?? 'info' };
  }

  get hubDataDir(): string {
    return join(this.dir, 'hub');
  }

  /** The CA bundle the hub API's certificate chains to (current: rewritten on root rotation). */
  hubCa(): string | undefined {
    const f = join(this.hubDataDir, 'ca', 'bundle.pem');
    return existsSync(f) ? readFileSync(f, 'utf8') : undefined;
  }

  /** fetch() to the hub API with its CA and the admin token (or `token`, or none with token ''). */
  hubFetch(path: string, init: ApiFetchInit & { token?: string } = {}): Promise<Response> {
    const ca = this.hubCa();
    const token = init.token ?? this.adminToken;
    return apiFetch(`${this.hubUrl}${path}`, init, { ...(ca ? { ca } : {}), ...(token ? { token } : {}) });
  }

  /** An agent's admin token (written at its first start). */
  agentToken(cluster: string): string {
    return readFileSync(join(this.agent(cluster).dataDir, 'agent-admin.token'), 'utf8').trim();
  }

  /** fetch() to a cluster's agent API with its admin token (or `token`, or none with token ''). */
  agentFetch(cluster: string, path: string, init: ApiFetchInit & { token?: string } = {}): Promise<Response> {
    const token = init.token ?? this.agentToken(cluster);
    return apiFetch(`${this.agent(cluster).apiUrl}${path}`, init, token ? { token } : {});
  }

  /** A CLI config for spawned meshfed processes: the hub (CA as a file, so rotations are followed) and the admin token. */
  cliConfigPath(agentCluster?: string): string {
    const file = join(this.dir, agentCluster ? `meshfed-${agentCluster}.yaml` : 'meshfed.yaml');
    const ctx: CliConfig['contexts'][number] = { name: 'fleet', hub: this.hubUrl, token: this.adminToken };
    if (!this.insecureApi) ctx.ca = join(this.hubDataDir, 'ca', 'bundle.pem');
    if (agentCluster) {
      ctx.agent = this.agent(agentCluster).apiUrl;
      ctx.agentToken = this.agentToken(agentCluster);
    }
    writeFileSync(file, stringifyYaml({ 'current-context': 'fleet', contexts: [ctx] }), { mode: 0o600 });
    return file;
  }

  /** Environment for a spawned CLI: MESHFED_CONFIG (and the agent's token when a cluster is given). */
  cliEnv(agentCluster?: string): Record<string, string> {
    const env: Record<string, string> = { MESHFED_CONFIG: this.cliConfigPath(agentCluster) };
    if (agentCluster) env.MESHFED_AGENT_TOKEN = this.agentToken(agentCluster);
    return env;
  }

  async startHub(extraArgs: string[] = []): Promise<void> {
    this.hubPorts ??= { api: await freePort(), agents: await freePort() };
    this.hubUrl = `${this.insecureApi ? 'http' : 'https'}://127.0.0.1:${this.hubPorts.api}`;
    this.hubAgentAddr = `127.0.0.1:${this.hubPorts.agents}`;
    this.hub = this.procs.start(
      'hub',
      [
        meshfedBin(),
        'hub',
        '--data-dir',
        join(this.dir, 'hub'),
        '--listen',
        `127.0.0.1:${this.hubPorts.api}`,
        '--agent-listen',
        this.hubAgentAddr,
        ...(this.insecureChannel ? ['--insecure-channel'] : []),
        ...(this.insecureApi ? ['--insecure-api'] : []),
        ...extraArgs,
      ],
      this.env(),
    );
    const ca = () => {
      const pem = this.hubCa();
      return pem ? { ca: pem } : {};
    };
    await waitHttp(`${this.hubUrl}/healthz`, 'hub', this.hub, 20_000, ca);
    // Written before the hub says it started; the healthz above may come first.
    const adminFile = join(this.hubDataDir, 'admin.meshfed.yaml');
    const deadline = Date.now() + 10_000;
    while (!existsSync(adminFile)) {
      if (Date.now() > deadline) throw new Error(`the hub wrote no ${adminFile}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    this.adminToken = (parseYaml(readFileSync(adminFile, 'utf8')) as CliConfig).contexts[0]?.token ?? '';
  }

  async stopHub(): Promise<void> {
    if (this.hub) await this.procs.stop(this.hub);
    this.hub = undefined;
  }

  async apply(objects: ApiObject[]): Promise<{ results: { object: string; outcome: string }[] }> {
    const r = await this.hubFetch('/api/v1alpha1/apply', { method: 'POST', body: JSON.stringify(objects) });
    const body = (await r.json()) as { error?: string; results: { object: string; outcome: string }[] };
    if (!r.ok) throw new Error(`apply failed: ${body.error}`);
    return body;
  }

  /**
   * `meshfed cluster add`: creates the Cluster if absent and returns a
   * one-time join token for it (kept for the cluster's next startAgent).
   */
  async addCluster(c: ClusterSpec, opts: { ttl?: string } = {}): Promise<{ token?: string; tokenId?: string; created: boolean; expiresAt?: string }> {
    const r = await this.hubFetch(`/api/v1alpha1/clusters/${c.name}/join-token`, {
      method: 'POST',
      body: JSON.stringify({ ttl: opts.ttl ?? '1h', spec: { network: c.network, region: c.region, zones: c.zones } }),
    });
    const body = (await r.json()) as { error?: string; token?: string; tokenId?: string; created: boolean; expiresAt?: string };
    if (!r.ok) throw new Error(`cluster add ${c.name}: ${body.error}`);
    if (body.token) this.tokens.set(c.name, body.token);
    return body;
  }

  /** A join token for an existing Cluster. */
  async joinToken(cluster: string, ttl = '1h'): Promise<string> {
    const r = await this.hubFetch(`/api/v1alpha1/clusters/${cluster}/join-token`, { method: 'POST', body: JSON.stringify({ ttl }) });
    const body = (await r.json()) as { error?: string; token?: string };
    if (!r.ok || !body.token) throw new Error(`join token for ${cluster}: ${body.error ?? 'no token (insecure hub?)'}`);
    this.tokens.set(cluster, body.token);
    return body.token;
  }

  /**
   * Starts a cluster's agent. With mTLS (the default) an agent that has not
   * joined yet gets a join token: the one addCluster made, or a new one for
   * its existing Cluster (`joinToken` overrides; `joinToken: false` starts it
   * without one). The token goes in the environment, never on the command line.
   */
  /** `nodeArgs`: flags for the agent's node process (e.g. --cpu-prof in a benchmark). */
  async startAgent(
    c: ClusterSpec,
    /** hubAddress: where the agent dials the hub's channel (default the hub's; e.g. a proxy that can cut it). */
    opts: { waitReady?: boolean; extraArgs?: string[]; joinToken?: string | false; nodeArgs?: string[]; hubAddress?: string } = {},
  ): Promise<AgentHandle> {
    const prev = this.agents.get(c.name);
    const xdsPort = prev?.xdsPort ?? (await freePort());
    const apiPort = prev ? Number(new URL(prev.apiUrl).port) : await freePort();
    const dataDir = join(this.dir, 'agents', c.name);
    const env = this.env();
    if (!this.insecureChannel && opts.joinToken !== false) {
      let token = opts.joinToken ?? this.tokens.get(c.name);
      if (!token && !existsSync(join(dataDir, 'trust', 'channel.pem'))) token = await this.joinToken(c.name);
      if (token) env.MESHFED_JOIN_TOKEN = token;
    }
    const args = [
      ...(opts.nodeArgs ?? []),
      meshfedBin(),
      'agent',
      '--cluster',
      c.name,
      '--hub',
      opts.hubAddress ?? this.hubAgentAddr,
      '--network',
      c.network,
      '--region',
      c.region,
      ...c.zones.flatMap((z) => ['--zone', z]),
      '--xds-listen',
      `127.0.0.1:${xdsPort}`,
      '--api-listen',
      `127.0.0.1:${apiPort}`,
      '--data-dir',
      dataDir,
      ...(this.insecureChannel ? ['--insecure-channel'] : []),
      ...(opts.extraArgs ?? []),
    ];
    const child = this.procs.start(`agent-${c.name}`, args, env);
    const h: AgentHandle = { cluster: c, child, xdsPort, apiUrl: `http://127.0.0.1:${apiPort}`, dataDir };
    this.agents.set(c.name, h);
    await waitHttp(`${h.apiUrl}/healthz`, `agent ${c.name}`, child);
    if (opts.waitReady !== false) await this.waitAgent(c.name, (s) => s.ready === true);
    return h;
  }

  async stopAgent(cluster: string): Promise<void> {
    const a = this.agent(cluster);
    await this.procs.stop(a.child);
  }

  agent(cluster: string): AgentHandle {
    const a = this.agents.get(cluster);
    if (!a) throw new Error(`no agent for ${cluster}`);
    return a;
  }

  async agentStatus(cluster: string): Promise<AgentStatus> {
    const r = await this.agentFetch(cluster, '/v1/status');
    return (await r.json()) as AgentStatus;
  }

  async waitAgent(cluster: string, pred: (s: AgentStatus) => boolean, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last: AgentStatus | undefined;
    while (Date.now() < deadline) {
      last = await this.agentStatus(cluster);
      if (pred(last)) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`agent ${cluster} did not reach the expected state within ${timeoutMs} ms; last status: ${JSON.stringify(last)}`);
  }

  async register(cluster: string, reg: Registration): Promise<{ status: number; body: Record<string, unknown> }> {
    const r = await this.agentFetch(cluster, '/v1/workloads', { method: 'POST', body: JSON.stringify(reg) });
    return { status: r.status, body: (await r.json()) as Record<string, unknown> };
  }

  async deregister(cluster: string, sel: { namespace?: string; name?: string; address?: string }): Promise<number> {
    const qs = new URLSearchParams(sel as Record<string, string>);
    const r = await this.agentFetch(cluster, `/v1/workloads?${qs}`, { method: 'DELETE' });
    return r.status;
  }

  async bootstrap(cluster: string, namespace: string, name: string, server: boolean, certDir?: string): Promise<string> {
    const qs = new URLSearchParams({ namespace, name, ...(server ? { server: '1' } : {}), ...(certDir ? { certDir } : {}) });
    const r = await this.agentFetch(cluster, `/v1/bootstrap?${qs}`);
    if (!r.ok) throw new Error(`bootstrap for ${cluster}/${namespace}/${name}: ${await r.text()}`);
    return await r.text();
  }

  /**
   * Gives a workload an identity: an identity token for namespace/serviceAccount
   * from the cluster's agent, and `meshfed identity run` beside it writing
   * cert.pem/key.pem/ca.pem. Resolves with the directory once the first
   * certificate is there.
   */
  async startIdentity(cluster: string, namespace: string, serviceAccount: string, name: string): Promise<{ dir: string; child: Child }> {
    const agent = this.agent(cluster);
    const r = await this.agentFetch(cluster, '/v1/identity/tokens', { method: 'POST', body: JSON.stringify({ namespace, serviceAccount }) });
    if (!r.ok) throw new Error(`identity token for ${cluster}/${namespace}/${serviceAccount}: ${await r.text()}`);
    const { token } = (await r.json()) as { token: string };
    const dir = join(this.dir, 'identities', `${cluster}-${name}`);
    const child = this.procs.start(`identity-${name}`, [meshfedBin(), 'identity', 'run', '--agent', agent.apiUrl, '--dir', dir], { MESHFED_IDENTITY_TOKEN: token });
    const deadline = Date.now() + 20_000;
    while (!existsSync(join(dir, 'cert.pem'))) {
      if (Date.now() > deadline) throw new Error(`identity for ${name}: no certificate in ${dir} after 20 s`);
      await new Promise((res) => setTimeout(res, 50));
    }
    return { dir, child };
  }

  /** Starts a helloworld xDS server in a cluster and registers it once it serves. */
  async startServer(
    cluster: string,
    o: {
      name: string;
      version: string;
      namespace?: string;
      /** Service it registers for (default helloworld). */
      service?: string;
      register?: boolean;
      failRate?: number;
      zone?: string;
      /** Certificates from `meshfed identity run` (mTLS); certDir uses an existing directory instead. */
      identity?: boolean;
      certDir?: string;
      /** Service account the certificate names (default helloworld). */
      serviceAccount?: string;
      /** Service account the registration claims (default: serviceAccount). */
      registeredServiceAccount?: string;
      /** GRPC_XDS_EXPERIMENTAL_RBAC=true, which AccessPolicies need (default true). */
      rbac?: boolean;
      /** gRPC max_connection_age of the server (bounds how long a connection can keep old RBAC; docs/access.md). */
      maxConnectionAgeMs?: number;
      /** Listen on this port (default: a free one), e.g. to come back where a stopped server was. */
      port?: number;
    },
  ): Promise<ServerHandle> {
    const ns = o.namespace ?? 'sample';
    const port = o.port ?? (await freePort());
    const sa = o.serviceAccount ?? 'helloworld';
    const certDir = o.certDir ?? (o.identity ? (await this.startIdentity(cluster, ns, sa, o.name)).dir : undefined);
    const bootstrap = await this.bootstrap(cluster, ns, o.name, true, certDir);
    const child = this.procs.start(
      `server-${o.name}`,
      [
        sampleProgram('server'),
        '--address',
        '127.0.0.1',
        '--port',
        String(port),
        '--cluster',
        cluster,
        '--version',
        o.version,
        '--name',
        o.name,
        ...(o.failRate ? ['--fail-rate', String(o.failRate)] : []),
        ...(o.maxConnectionAgeMs ? ['--max-connection-age-ms', String(o.maxConnectionAgeMs)] : []),
      ],
      // RBAC (AccessPolicies) is experimental in grpc-js-xds: without this a Listener with RBAC filters is NACKed.
      { GRPC_XDS_BOOTSTRAP_CONFIG: bootstrap, ...(o.rbac === false ? {} : { GRPC_XDS_EXPERIMENTAL_RBAC: 'true' }) },
    );
    await child.waitEvent((e) => e.event === 'serving');
    const address = `127.0.0.1:${port}`;
    if (o.register !== false) {
      const r = await this.register(cluster, {
        name: o.name,
        namespace: ns,
        service: o.service ?? 'helloworld',
        address,
        servicePort: HELLOWORLD_PORT,
        labels: { version: o.version },
        serviceAccount: o.registeredServiceAccount ?? sa,
        ...(o.zone ? { zone: o.zone } : {}),
      });
      if (r.status >= 300) throw new Error(`register ${o.name}: ${JSON.stringify(r.body)}`);
    }
    return { child, cluster, name: o.name, address };
  }

  /** Starts a helloworld client in a cluster; it prints a JSON tick per second. */
  startClient(cluster: string, bootstrap: string, o: { target: string; rate: number; name?: string; deadlineMs?: number; headers?: Record<string, string>; tickMs?: number; method?: string }): Child {
    return this.procs.start(
      `client-${o.name ?? cluster}`,
      [
        sampleProgram('client'),
        '--target',
        o.target,
        '--rate',
        String(o.rate),
        '--deadline-ms',
        String(o.deadlineMs ?? 2000),
        ...Object.entries(o.headers ?? {}).flatMap(([k, v]) => ['--header', `${k}=${v}`]),
        ...(o.tickMs ? ['--tick-ms', String(o.tickMs)] : []),
        ...(o.method ? ['--method', o.method] : []),
      ],
      { GRPC_XDS_BOOTSTRAP_CONFIG: bootstrap },
    );
  }

  async close(): Promise<void> {
    await this.procs.stopAll();
    await rm(this.dir, { recursive: true, force: true });
  }
}
