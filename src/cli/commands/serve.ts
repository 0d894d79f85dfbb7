// `meshfed hub` and `meshfed agent`: the long-running servers. Each runs until
// SIGINT/SIGTERM, then stops cleanly and exits 0. A server that cannot start
// fails the command (exit 1) with its own message (e.g. an address in use).
// Both take --config FILE (YAML, the flags by their long names: config-file.ts).
// The server modules are imported when the command runs, so the other
// commands start without loading them.
import type { Command } from 'commander';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { errorMessage, MeshfedError } from '../../util/errors.js';
import { withConfigFile } from '../config-file.js';
import { addressFlag, collect, commaList, durationFlag, nonNegative, readFlagFile } from '../flags.js';
import type { AgentOptions } from '../../agent/agent.js';
import { hubAddresses } from '../../util/address.js';
import type { HubOptions } from '../../hub/hub.js';
import { parseStoreLocation } from '../../store/location.js';

interface HubFlags {
  dataDir: string;
  store?: string;
  stateKeyFile?: string;
  listen: string;
  agentListen: string;
  channelSan: string[];
  caCert?: string;
  caKey?: string;
  caRoots?: string;
  agentCertTtl: string;
  insecureChannel?: boolean;
  insecureApi?: boolean;
  apiCert?: string;
  apiKey?: string;
  apiSan: string[];
  kubernetesPolicies?: boolean;
  kubeconfig?: string;
  kubeContext?: string;
  leaderLease: string;
}

interface AgentFlags {
  joinToken?: string;
  joinTokenFile?: string;
  insecureChannel?: boolean;
  cluster?: string;
  hub: string;
  network?: string;
  region?: string;
  zone: string[];
  xdsListen: string;
  apiListen: string;
  dataDir?: string;
  importNamespace: string[];
  pushDebounceMs: string;
  pushMaxDelayMs: string;
  kubernetes?: boolean;
  kubeconfig?: string;
  kubeContext?: string;
  kubeNamespace: string[];
  /** commander's --no-mcs-import: false when given. */
  mcsImport: boolean;
}

export function addServeCommands(program: Command): void {
  const hub = program
    .command('hub')
    .description('run the hub: the global API, its store, and the channel agents dial out to')
    .option('--data-dir <dir>', 'where the store lives', join(homedir(), '.meshfed', 'hub'))
    .option(
      '--store <url>',
      'where the hub keeps everything: file (embedded, in --data-dir) or etcd://host:port[,host:port...][/prefix] (shared by hub replicas; the audit log at <prefix>/audit)',
      'file',
    )
    .option(
      '--state-key-file <file>',
      'the key (32 bytes, base64 or hex) that encrypts the generated root keys in the store; required with --store etcd:// (the same file on every replica); default <data-dir>/state.key, generated',
    )
    .option(
      '--leader-lease <duration>',
      'with an etcd store: the TTL of the lease the leading replica holds (whole seconds, at least 1s); a standby takes over about this long after the leader is lost',
      '2s',
    )
    .option('--listen <host:port>', 'HTTP API address', '127.0.0.1:7400')
    .option('--agent-listen <host:port>', 'agent channel (gRPC) address', '127.0.0.1:7401')
    .option('--channel-san <name>', 'a DNS name or IP agents use to reach the hub, for the channel certificate (repeatable)', collect, [])
    .option('--ca-cert <file>', 'use this CA certificate (an intermediate of your root, chain after it) as the mesh CA instead of a generated root')
    .option('--ca-key <file>', 'the key of --ca-cert')
    .option('--ca-roots <file>', 'the roots --ca-cert chains to (the trust bundle)')
    .option('--agent-cert-ttl <duration>', "lifetime of agents' channel certificates (renewed at half-life)", '720h')
    .option('--insecure-channel', 'plaintext agent channel without agent authentication: development and benchmarks only')
    .option('--api-cert <file>', 'serve the API with this TLS certificate (chain after it) instead of one from the mesh CA')
    .option('--api-key <file>', 'the key of --api-cert')
    .option('--api-san <name>', 'a DNS name or IP clients use to reach the API (Host check, certificate SAN; repeatable)', collect, [])
    .option('--insecure-api', 'plain-HTTP API (credentials still required): loopback addresses only, development and benchmarks')
    .option('--kubernetes-policies', 'take the policies and the Mesh from custom resources in a Kubernetes cluster (GitOps; install them with meshfed crds | kubectl apply -f -)')
    .option('--kubeconfig <file>', 'with --kubernetes-policies: the kubeconfig (default: KUBECONFIG, ~/.kube/config, or in-cluster)')
    .option('--kube-context <name>', "with --kubernetes-policies: the kubeconfig's context (default: its current one)");
  withConfigFile(hub).action(runHub);

  const agent = program
    .command('agent')
    .description("run a cluster's agent: discovery, report to the hub, xDS for the local data plane")
    .option('--cluster <name>', 'the Cluster this agent serves (must exist at the hub; required, on the command line or in --config)')
    .option('--hub <host:port,...>', 'hub agent-channel address; several replicas comma-separated (tried in turn: the leader serves)', '127.0.0.1:7401')
    .option('--network <name>', "the cluster's network (checked against the Cluster object)")
    .option('--region <name>', "the cluster's region (checked against the Cluster object)")
    .option('--zone <zone>', 'a zone of the cluster (repeatable; checked against the Cluster object)', collect, [])
    .option('--xds-listen <host:port>', 'xDS (ADS) address; plaintext, so loopback by default', '127.0.0.1:15010')
    .option('--api-listen <host:port>', 'agent API address (registration, status, bootstrap)', '127.0.0.1:15011')
    .option('--data-dir <dir>', 'registrations and the last view from the hub')
    .option('--import-namespace <ns>', 'import only these namespaces from other clusters (repeatable; default all)', collect, [])
    .option('--push-debounce-ms <ms>', 'coalesce xDS changes arriving within this window', '0')
    .option('--push-max-delay-ms <ms>', 'never hold a coalesced xDS push longer than this', '100')
    .option('--join-token <token>', 'one-time join token from meshfed cluster add (visible in ps: prefer --join-token-file or MESHFED_JOIN_TOKEN)')
    .option('--join-token-file <file>', 'read the join token from this file')
    .option('--insecure-channel', 'plaintext hub channel without a client certificate (a hub with --insecure-channel)')
    .option('--kubernetes', 'discover Services, EndpointSlices and Pods from the Kubernetes API (in-cluster config, KUBECONFIG or ~/.kube/config)')
    .option('--kubeconfig <file>', 'with --kubernetes: this kubeconfig file')
    .option('--kube-context <name>', 'with --kubernetes: this context of the kubeconfig')
    .option('--no-mcs-import', 'with --kubernetes: write no ServiceImports and EndpointSlices for the services this cluster imports')
    .option('--kube-namespace <ns>', 'with --kubernetes: discover only these namespaces (repeatable; default all but kube-system, kube-public, kube-node-lease)', collect, []);
  withConfigFile(agent).action(runAgent);
}

async function runHub(o: HubFlags): Promise<void> {
  const { Hub } = await import('../../hub/hub.js');
  const given = [o.caCert, o.caKey, o.caRoots].filter(Boolean).length;
  if (given !== 0 && given !== 3) throw new MeshfedError('usage', '--ca-cert, --ca-key and --ca-roots go together');
  const opts: HubOptions = {
    dataDir: o.dataDir,
    api: addressFlag(o.listen, '--listen'),
    agents: addressFlag(o.agentListen, '--agent-listen'),
    channelHosts: commaList(o.channelSan),
    agentCertTtlMs: durationFlag(o.agentCertTtl, '--agent-cert-ttl'),
    insecureChannel: o.insecureChannel === true,
    insecureApi: o.insecureApi === true,
    apiHosts: commaList(o.apiSan),
    leaderLeaseMs: leaderLeaseFlag(o.leaderLease),
  };
  // 'file': the embedded store in --data-dir; else etcd://... (a directory is given with --data-dir, not here).
  const store = o.store ?? 'file';
  if (store !== 'file' && !store.startsWith('etcd://')) throw new MeshfedError('usage', `--store ${store}: give file or etcd://host:port[,host:port...][/prefix]`);
  opts.store = store === 'file' ? { kind: 'file', dir: opts.dataDir } : parseStoreLocation(store, '--store');
  if (o.stateKeyFile) opts.stateKeyFile = o.stateKeyFile;
  if ((o.kubeconfig || o.kubeContext) && !o.kubernetesPolicies) throw new MeshfedError('usage', '--kubeconfig and --kube-context go with --kubernetes-policies');
  if (o.kubernetesPolicies) opts.kubernetesPolicies = { ...(o.kubeconfig ? { kubeconfig: o.kubeconfig } : {}), ...(o.kubeContext ? { context: o.kubeContext } : {}) };
  if (Boolean(o.apiCert) !== Boolean(o.apiKey)) throw new MeshfedError('usage', '--api-cert and --api-key go together');
  if (o.apiCert && o.apiKey) opts.apiCertificate = { certPem: await readFlagFile(o.apiCert, '--api-cert'), keyPem: await readFlagFile(o.apiKey, '--api-key') };
  if (o.caCert && o.caKey && o.caRoots) {
    opts.externalCa = {
      certChainPem: await readFlagFile(o.caCert, '--ca-cert'),
      keyPem: await readFlagFile(o.caKey, '--ca-key'),
      rootsPem: await readFlagFile(o.caRoots, '--ca-roots'),
    };
  }
  const hub = await Hub.start(opts).catch((err: unknown) => {
    if (err instanceof MeshfedError) throw err;
    throw new MeshfedError('internal', errorMessage(err), { cause: err });
  });
  await untilSignal(() => hub.stop());
}

async function runAgent(o: AgentFlags): Promise<void> {
  if (!o.cluster) throw new MeshfedError('usage', "required option '--cluster <name>' not specified (on the command line or as cluster: in --config)");
  const { Agent } = await import('../../agent/agent.js');
  const hubs = hubAddresses(o.hub);
  if (hubs.length === 0) throw new MeshfedError('usage', '--hub: give HOST:PORT (several hub replicas comma-separated)');
  for (const a of hubs) addressFlag(a, '--hub');
  const opts: AgentOptions = {
    cluster: o.cluster,
    hub: o.hub,
    xds: addressFlag(o.xdsListen, '--xds-listen'),
    api: addressFlag(o.apiListen, '--api-listen'),
    dataDir: o.dataDir ?? join(homedir(), '.meshfed', 'agent', o.cluster),
    zones: commaList(o.zone),
    importNamespaces: commaList(o.importNamespace),
    pushDebounceMs: nonNegative(o.pushDebounceMs, '--push-debounce-ms'),
    pushMaxDelayMs: nonNegative(o.pushMaxDelayMs, '--push-max-delay-ms'),
  };
  if (o.network) opts.network = o.network;
  if (o.region) opts.region = o.region;
  if (o.joinToken && o.joinTokenFile) throw new MeshfedError('usage', '--join-token and --join-token-file: give one');
  let token = o.joinToken ?? process.env.MESHFED_JOIN_TOKEN;
  if (o.joinTokenFile) token = (await readFlagFile(o.joinTokenFile, '--join-token-file')).trim();
  if (o.insecureChannel) opts.insecureChannel = true;
  else if (token) opts.joinToken = token;
  const kubeNamespaces = commaList(o.kubeNamespace);
  if (!o.kubernetes && (o.kubeconfig || o.kubeContext || kubeNamespaces.length)) throw new MeshfedError('usage', '--kubeconfig, --kube-context and --kube-namespace need --kubernetes');
  if (o.kubernetes) {
    opts.kubernetes = {};
    if (o.kubeconfig) opts.kubernetes.kubeconfig = o.kubeconfig;
    if (o.kubeContext) opts.kubernetes.context = o.kubeContext;
    if (kubeNamespaces.length) opts.kubernetes.namespaces = kubeNamespaces;
    if (!o.mcsImport) opts.kubernetes.mcsImport = false;
  }
  const agent = await Agent.start(opts).catch((err: unknown) => {
    if (err instanceof MeshfedError) throw err;
    throw new MeshfedError('internal', errorMessage(err), { cause: err });
  });
  await untilSignal(() => agent.stop());
}

/** Runs until SIGINT/SIGTERM, then stops cleanly and exits 0. */
function untilSignal(stop: () => Promise<void>): Promise<void> {
  return new Promise((resolve) => {
    let stopping = false;
    const onSignal = () => {
      if (stopping) return;
      stopping = true;
      stop()
        .catch((err: unknown) => process.stderr.write(`error while stopping: ${String(err)}\n`))
        .finally(() => {
          resolve();
          process.exit(0);
        });
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}

/** --leader-lease: a duration of whole seconds, at least 1 s (etcd's lease TTLs are seconds). */
function leaderLeaseFlag(v: string): number {
  const ms = durationFlag(v, '--leader-lease');
  if (ms < 1000 || ms % 1000 !== 0) throw new MeshfedError('usage', `--leader-lease ${v}: give whole seconds, at least 1s (etcd counts lease TTLs in seconds)`);
  return ms;
}
