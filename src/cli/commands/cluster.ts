// `meshfed cluster add` and `meshfed trust status|rotate-root`: joining a
// cluster to the fleet and the mesh's root of trust. `cluster add` prints the
// join token alone on stdout (so `> token` works) and its hints on stderr:
// the `meshfed install agent ... | kubectl apply -f -` command for a Kubernetes
// cluster and the `meshfed agent` command for a VM (with -o json|yaml, the
// same two as fields of `next`).
import type { Command } from 'commander';
import { MeshfedError } from '../../util/errors.js';
import { durationFlag, hubOption, outputOption } from '../flags.js';
import { request } from '../http.js';
import { parseFormat, print } from '../output.js';

interface JoinTokenAnswer {
  cluster: string;
  created: boolean;
  token?: string;
  tokenId?: string;
  expiresAt?: string;
  message?: string;
}

export function addClusterCommands(program: Command): void {
  const cluster = program.command('cluster').description('clusters of the fleet: add one and get its join token');
  cluster
    .command('add')
    .description('create the Cluster (if absent) and print a one-time join token for its agent')
    .argument('<name>', 'cluster name')
    .option('--region <region>', "the cluster's region (required to create it)")
    .option('--zones <zones>', "the cluster's zones, comma-separated (required to create it)")
    .option('--network <network>', "the cluster's network", undefined)
    .option('--token-ttl <duration>', 'how long the token may be used', '1h')
    .addOption(hubOption())
    .addOption(outputOption())
    .action(addCluster);

  const trust = program.command('trust').description("the mesh's root of trust: status and root rotation");
  trust
    .command('status')
    .description("trust domain, roots and their phase, each cluster's intermediate CA and agent certificate, warnings")
    .addOption(hubOption())
    .addOption(outputOption())
    .action(async (o: { hub: string; output: string }) => {
      const { printTrustStatus } = await import('../trust.js');
      await printTrustStatus(o);
    });
  trust
    .command('rotate-root')
    .description('rotate the root in phases: (no flag) add a new root to the bundle; --activate: it signs and intermediates are re-issued; --retire: the old root leaves the bundle')
    .option('--activate', 'phase 2: the new root signs; every cluster re-issues its intermediate')
    .option('--retire', 'phase 3: the old root leaves the trust bundle')
    .option('--force', 'with --retire: even if some clusters have not re-issued under the new root yet')
    .addOption(hubOption())
    .addOption(outputOption())
    .action(async (o: { activate?: boolean; retire?: boolean; force?: boolean; hub: string; output: string }) => {
      if (o.activate && o.retire) throw new MeshfedError('usage', '--activate and --retire are separate phases: run one, then the other');
      if (o.force && !o.retire) throw new MeshfedError('usage', '--force goes with --retire');
      const step = o.activate ? 'activate' : o.retire ? 'retire' : 'add';
      const { printTrustStatus } = await import('../trust.js');
      await printTrustStatus(o, { step, force: o.force === true });
    });
}

async function addCluster(name: string, o: { region?: string; zones?: string; network?: string; tokenTtl: string; hub: string; output: string }): Promise<void> {
  const format = parseFormat(o.output);
  durationFlag(o.tokenTtl, '--token-ttl');
  const spec: Record<string, unknown> = {};
  if (o.region) spec.region = o.region;
  if (o.zones)
    spec.zones = o.zones
      .split(',')
      .map((z) => z.trim())
      .filter(Boolean);
  if (o.network) spec.network = o.network;
  const body: Record<string, unknown> = { ttl: o.tokenTtl };
  if (Object.keys(spec).length) body.spec = spec;
  const r = await request<JoinTokenAnswer>(o.hub, 'hub', 'POST', `api/v1alpha1/clusters/${encodeURIComponent(name)}/join-token`, {
    text: JSON.stringify(body),
    contentType: 'application/json',
  });
  if (format === 'json' || format === 'yaml') {
    // The same answer plus how to start the agent: fields a script can read (the token stays in `token`).
    print(r.token ? { ...r, next: nextSteps(r.cluster) } : r, format, () => '');
    return;
  }
  process.stderr.write(`Cluster ${r.cluster} ${r.created ? 'created' : 'exists'}\n`);
  if (!r.token) {
    process.stderr.write(`${r.message ?? 'no token'}\n`);
    return;
  }
  process.stdout.write(r.token + '\n');
  const next = nextSteps(r.cluster);
  process.stderr.write(
    `join token ${r.tokenId} for cluster ${r.cluster}: single use, expires ${r.expiresAt}\n` +
      `install the agent into the cluster (kubectl's current context): ${next.kubernetes}\n` +
      `or start it on a VM: ${next.vm}\n`,
  );
}

/** How to start the cluster's agent with the token saved to a file: in Kubernetes (docs/kubernetes.md#install) or on a VM. */
export function nextSteps(cluster: string): { kubernetes: string; vm: string } {
  const hub = '<hub agent-channel address>';
  const file = '<file with this token>';
  return {
    kubernetes: `meshfed install agent --cluster ${cluster} --hub ${hub} --join-token-file ${file} | kubectl apply -f -`,
    vm: `meshfed agent --cluster ${cluster} --hub ${hub} --join-token-file ${file}`,
  };
}
