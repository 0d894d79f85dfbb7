// `meshfed install hub` and `meshfed install agent`: print the Kubernetes
// manifests of a hub or an agent, for `meshfed install ... | kubectl apply -f -`
// (as `linkerd install` does); `meshfed install systemd agent|identity`: the
// systemd units for a VM (src/install/systemd.ts). Nothing is sent anywhere: this reads the join
// token file (agent) and prints; src/install makes the objects. stdout holds
// only the manifests (-o yaml: multi-document; -o json: a v1 List).
import type { Command } from 'commander';
import { Option } from 'commander';
import { MeshfedError } from '../../util/errors.js';
import { meshfedVersion } from '../../util/version.js';
import { collect, readFlagFile } from '../flags.js';
import type { Manifest } from '../../install/manifests.js';

interface CommonFlags {
  namespace: string;
  image?: string;
  imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  storageClass?: string;
  storageSize: string;
  output: string;
}

interface HubFlags extends CommonFlags {
  skipCrds?: boolean;
  clusterDomain: string;
  san: string[];
  serviceType: 'ClusterIP' | 'NodePort' | 'LoadBalancer';
}

interface AgentFlags extends CommonFlags {
  cluster: string;
  hub: string;
  joinToken?: string;
  joinTokenFile?: string;
}

function common(cmd: Command): Command {
  return cmd
    .option('-n, --namespace <ns>', 'the namespace to install into (created)', 'meshfed')
    .option('--image <ref>', `the meshfed image (default ghcr.io/meshfed/meshfed:${meshfedVersion()})`)
    .addOption(new Option('--image-pull-policy <policy>', 'the image pull policy').choices(['Always', 'IfNotPresent', 'Never']))
    .option('--storage-class <name>', "StorageClass of the data volume (default: the cluster's default)")
    .option('--storage-size <quantity>', 'size of the data volume', '1Gi')
    .option('-o, --output <format>', 'yaml (documents separated by ---) or json (a List)', 'yaml');
}

export function addInstallCommands(program: Command): void {
  const install = program.command('install').description('print the Kubernetes manifests of a hub or an agent: meshfed install ... | kubectl apply -f -');
  common(
    install
      .command('hub')
      .description('the hub: meshfed CRDs, Namespace, ServiceAccount, ClusterRole (policy objects and their status), data volume, Deployment, PodDisruptionBudget, Service')
      .option('--skip-crds', 'leave out the meshfed CustomResourceDefinitions (installed separately: meshfed crds)')
      .option('--cluster-domain <domain>', "the cluster's DNS domain (the Service's names in the hub's certificates)", 'cluster.local')
      .option('--san <name>', 'another DNS name or IP the API and the agent channel are reached by, e.g. a load balancer (repeatable)', collect, [])
      .addOption(new Option('--service-type <type>', 'the Service type (agents in other clusters must reach the channel)').choices(['ClusterIP', 'NodePort', 'LoadBalancer']).default('ClusterIP')),
  ).action(installHub);
  common(
    install
      .command('agent')
      .description(
        "a cluster's agent: Namespace, ServiceAccount, ClusterRole (discovery, ServiceImports, EndpointSlices, status, Events), join token Secret, data volume, Deployment, PodDisruptionBudget, Service",
      )
      .requiredOption('--cluster <name>', 'the Cluster (meshfed cluster add NAME made it and its join token)')
      .requiredOption('--hub <host:port>', "the hub's agent channel as reached from this cluster")
      .option('--join-token <token>', 'the one-time join token (visible in ps: prefer --join-token-file or MESHFED_JOIN_TOKEN)')
      .option('--join-token-file <file>', 'read the join token from this file'),
  ).action(installAgent);

  const systemd = install.command('systemd').description('print a systemd unit for a VM: meshfed install systemd agent|identity ... > /etc/systemd/system/NAME.service');
  systemd
    .command('agent')
    .description("meshfed-agent.service: a cluster's agent on a VM (data in /var/lib/meshfed/agent, hardened, restarted on failure)")
    .requiredOption('--cluster <name>', 'the Cluster (meshfed cluster add NAME made it and its join token)')
    .requiredOption('--hub <host:port>', "the hub's agent channel as reached from this VM")
    .option('--join-token-file <file>', 'the join token file, readable by --user (needed at the first start only)')
    .option('--config <file>', 'also pass --config FILE (meshfed agent flags in YAML: docs/operations.md#config-files)')
    .option('--user <name>', 'the system user the agent runs as', 'meshfed')
    .option('--meshfed-bin <path>', 'the meshfed executable', '/usr/local/bin/meshfed')
    .action(async (o: { cluster: string; hub: string; joinTokenFile?: string; config?: string; user: string; meshfedBin: string }) => {
      const { agentUnit } = await import('../../install/systemd.js');
      process.stdout.write(agentUnit(o));
    });
  systemd
    .command('identity')
    .description('meshfed-identity.service: meshfed identity run beside a workload on a VM (writes only --dir)')
    .requiredOption('--dir <dir>', 'where cert.pem, key.pem and ca.pem go (exists, owned by --user)')
    .requiredOption('--token-file <file>', 'the identity token file (meshfed identity token --out FILE)')
    .option('--agent <url|host:port>', "this machine's agent API (default http://127.0.0.1:15011)")
    .option('--user <name>', 'the user the workload runs as (it reads key.pem)', 'meshfed')
    .option('--after <unit>', 'start after this unit (the agent on the same VM)', 'meshfed-agent.service')
    .option('--meshfed-bin <path>', 'the meshfed executable', '/usr/local/bin/meshfed')
    .action(async (o: { dir: string; tokenFile: string; agent?: string; user: string; after: string; meshfedBin: string }) => {
      const { identityUnit } = await import('../../install/systemd.js');
      process.stdout.write(identityUnit(o));
    });
}

function format(o: CommonFlags): 'yaml' | 'json' {
  const f = o.output.toLowerCase();
  if (f !== 'yaml' && f !== 'json') throw new MeshfedError('usage', `-o: unknown output format "${o.output}" (yaml or json)`);
  return f;
}

function commonOptions(o: CommonFlags): { version: string; namespace: string; image?: string; imagePullPolicy?: CommonFlags['imagePullPolicy']; storageClass?: string; storageSize: string } {
  return {
    version: meshfedVersion(),
    namespace: o.namespace,
    storageSize: o.storageSize,
    ...(o.image !== undefined ? { image: o.image } : {}),
    ...(o.imagePullPolicy ? { imagePullPolicy: o.imagePullPolicy } : {}),
    ...(o.storageClass !== undefined ? { storageClass: o.storageClass } : {}),
  };
}

async function print(manifests: readonly Manifest[], f: 'yaml' | 'json', header: string): Promise<void> {
  const { renderJson, renderYaml } = await import('../../install/render.js');
  process.stdout.write(f === 'json' ? renderJson(manifests) : renderYaml(manifests, header));
}

async function installHub(o: HubFlags): Promise<void> {
  const f = format(o);
  const { hubManifests } = await import('../../install/manifests.js');
  // What the hub reads from its cluster: Mesh and the policy kinds, as `meshfed crds` prints them.
  const { crds } = await import('../../registry.js');
  const manifests = hubManifests({
    ...commonOptions(o),
    crds: crds(),
    ...(o.skipCrds ? { skipCrds: true } : {}),
    clusterDomain: o.clusterDomain,
    extraSans: o.san,
    serviceType: o.serviceType,
  });
  await print(manifests, f, `meshfed ${meshfedVersion()} hub, namespace ${o.namespace}: meshfed install hub | kubectl apply -f -`);
}

async function installAgent(o: AgentFlags): Promise<void> {
  const f = format(o);
  if (o.joinToken && o.joinTokenFile) throw new MeshfedError('usage', '--join-token and --join-token-file: give one');
  let token = o.joinToken ?? process.env.MESHFED_JOIN_TOKEN;
  if (o.joinTokenFile) token = (await readFlagFile(o.joinTokenFile, '--join-token-file')).trim();
  if (!token) throw new MeshfedError('usage', 'the join token: give --join-token-file FILE (from meshfed cluster add NAME > FILE), --join-token, or MESHFED_JOIN_TOKEN');
  const { agentManifests } = await import('../../install/manifests.js');
  const manifests = agentManifests({ ...commonOptions(o), cluster: o.cluster, hub: o.hub, joinToken: token });
  await print(manifests, f, `meshfed ${meshfedVersion()} agent of cluster ${o.cluster}, namespace ${o.namespace}: meshfed install agent ... | kubectl apply -f -`);
}
