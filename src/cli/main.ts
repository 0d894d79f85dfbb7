// The meshfed CLI. Exit codes: 0 ok, 1 failed or invalid input, 2 usage error,
// 3 hub/agent unreachable, 4 not found, 5 conflict (see docs/cli.md).
import { Command, CommanderError, Option } from 'commander';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { InvalidInputError, type ApiObject } from '../api/index.js';
import { parseHostPort } from '../util/address.js';
import { CliError, EXIT, parseFormat } from './output.js';
import { getCommand } from './get.js';
import { request } from './http.js';
import { printProxyStatus, printAgentStatus } from './status.js';
import { parseAndValidate } from '../registry.js';

const DEFAULT_HUB = process.env.MESHFED_HUB ?? 'http://127.0.0.1:7400';
const DEFAULT_AGENT = process.env.MESHFED_AGENT ?? 'http://127.0.0.1:15011';

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // commander already printed the message (or help)
      process.exit(err.exitCode === 0 ? 0 : EXIT.usage);
    }
    if (err instanceof CliError) {
      process.stderr.write(`error: ${err.message}\n`);
      process.exit(err.exitCode);
    }
    if (err instanceof InvalidInputError) {
      process.stderr.write(`error: invalid input\n${err.message}\n`);
      process.exit(EXIT.failed);
    }
    throw err;
  }
}

function nonNegative(v: string, flag: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new CliError(EXIT.usage, `${flag}: "${v}" is not a non-negative number`);
  return n;
}

function durationFlag(v: string, flag: string): number {
  const m = /^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)$/.exec(v);
  if (!m) throw new CliError(EXIT.usage, `${flag}: "${v}" is not a duration (e.g. 30m, 1h, 7d)`);
  return Math.round(Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'ms' | 's' | 'm' | 'h' | 'd']);
}

function collect(value: string, prev: string[]): string[] {
  return [...prev, value];
}

function hubOption(): Option {
  return new Option('--hub <url>', 'hub API URL (env MESHFED_HUB)').default(DEFAULT_HUB);
}
function agentOption(): Option {
  return new Option('--agent <url>', "this cluster's agent API URL (env MESHFED_AGENT)").default(DEFAULT_AGENT);
}
function outputOption(): Option {
  return new Option('-o, --output <format>', 'table, wide, json or yaml').default('table');
}

export function buildProgram(): Command {
  const program = new Command('meshfed')
    .description('Multicluster service mesh: many clusters, one mesh')
    .version('0.1.0')
    .showHelpAfterError()
    // Set before the subcommands are added: they inherit it, so usage errors reach main() and exit 2.
    .exitOverride();

  program
    .command('hub')
    .description('run the hub: the global API, its store, and the channel agents dial out to')
    .option('--data-dir <dir>', 'where the store lives', join(homedir(), '.meshfed', 'hub'))
    .option('--listen <host:port>', 'HTTP API address', '127.0.0.1:7400')
    .option('--agent-listen <host:port>', 'agent channel (gRPC) address', '127.0.0.1:7401')
    .option('--channel-san <name>', "a DNS name or IP agents use to reach the hub, for the channel certificate (repeatable)", collect, [])
    .option('--ca-cert <file>', 'use this CA certificate (an intermediate of your root, chain after it) as the mesh CA instead of a generated root')
    .option('--ca-key <file>', 'the key of --ca-cert')
    .option('--ca-roots <file>', 'the roots --ca-cert chains to (the trust bundle)')
    .option('--agent-cert-ttl <duration>', "lifetime of agents' channel certificates (renewed at half-life)", '720h')
    .option('--insecure-channel', 'plaintext agent channel without agent authentication: development and benchmarks only')
    .action(async (o: { dataDir: string; listen: string; agentListen: string; channelSan: string[]; caCert?: string; caKey?: string; caRoots?: string; agentCertTtl: string; insecureChannel?: boolean }) => {
      const { Hub } = await import('../hub/hub.js');
      const given = [o.caCert, o.caKey, o.caRoots].filter(Boolean).length;
      if (given !== 0 && given !== 3) throw new CliError(EXIT.usage, '--ca-cert, --ca-key and --ca-roots go together');
      const readPem = async (f: string, flag: string) => {
        try {
          return await readFile(f, 'utf8');
        } catch (err) {
          throw new CliError(EXIT.failed, `${flag} ${f}: ${(err as { code?: string }).code ?? String(err)}`);
        }
      };
      const opts: import('../hub/hub.js').HubOptions = {
        dataDir: o.dataDir,
        api: parseHostPort(o.listen, '--listen'),
        agents: parseHostPort(o.agentListen, '--agent-listen'),
        channelHosts: o.channelSan.flatMap((x) => x.split(',')).filter(Boolean),
        agentCertTtlMs: durationFlag(o.agentCertTtl, '--agent-cert-ttl'),
        insecureChannel: o.insecureChannel === true,
      };
      if (o.caCert && o.caKey && o.caRoots) {
        opts.externalCa = { certChainPem: await readPem(o.caCert, '--ca-cert'), keyPem: await readPem(o.caKey, '--ca-key'), rootsPem: await readPem(o.caRoots, '--ca-roots') };
      }
      const hub = await Hub.start(opts).catch((err: unknown) => {
        throw new CliError(EXIT.failed, err instanceof Error ? err.message : String(err));
      });
      await untilSignal(() => hub.stop());
    });

  program
    .command('agent')
    .description("run a cluster's agent: discovery, report to the hub, xDS for the local data plane")
    .requiredOption('--cluster <name>', 'the Cluster this agent serves (must exist at the hub)')
    .option('--hub <host:port>', 'hub agent-channel address', '127.0.0.1:7401')
    .option('--network <name>', "the cluster's network (checked against the Cluster object)")
    .option('--region <name>', "the cluster's region (checked against the Cluster object)")
    .option('--zone <zone>', "a zone of the cluster (repeatable; checked against the Cluster object)", collect, [])
    .option('--xds-listen <host:port>', 'xDS (ADS) address; plaintext, so loopback by default', '127.0.0.1:15010')
    .option('--api-listen <host:port>', 'agent API address (registration, status, bootstrap)', '127.0.0.1:15011')
    .option('--data-dir <dir>', 'registrations and the last view from the hub')
    .option('--import-namespace <ns>', 'import only these namespaces from other clusters (repeatable; default all)', collect, [])
    .option('--push-debounce-ms <ms>', 'coalesce xDS changes arriving within this window', '0')
    .option('--push-max-delay-ms <ms>', 'never hold a coalesced xDS push longer than this', '100')
    .option('--join-token <token>', 'one-time join token from meshfed cluster add (visible in ps: prefer --join-token-file or MESHFED_JOIN_TOKEN)')
    .option('--join-token-file <file>', 'read the join token from this file')
    .option('--insecure-channel', 'plaintext hub channel without a client certificate (a hub with --insecure-channel)')
    .action(
      async (o: {
        joinToken?: string;
        joinTokenFile?: string;
        insecureChannel?: boolean;
        cluster: string;
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
      }) => {
        const { Agent } = await import('../agent/agent.js');
        parseHostPort(o.hub, '--hub');
        const opts: import('../agent/agent.js').AgentOptions = {
          cluster: o.cluster,
          hub: o.hub,
          xds: parseHostPort(o.xdsListen, '--xds-listen'),
          api: parseHostPort(o.apiListen, '--api-listen'),
          dataDir: o.dataDir ?? join(homedir(), '.meshfed', 'agent', o.cluster),
          zones: o.zone.flatMap((z) => z.split(',')).filter(Boolean),
          importNamespaces: o.importNamespace.flatMap((z) => z.split(',')).filter(Boolean),
          pushDebounceMs: nonNegative(o.pushDebounceMs, '--push-debounce-ms'),
          pushMaxDelayMs: nonNegative(o.pushMaxDelayMs, '--push-max-delay-ms'),
        };
        if (o.network) opts.network = o.network;
        if (o.region) opts.region = o.region;
        if (o.joinToken && o.joinTokenFile) throw new CliError(EXIT.usage, '--join-token and --join-token-file: give one');
        let token = o.joinToken ?? process.env.MESHFED_JOIN_TOKEN;
        if (o.joinTokenFile) {
          try {
            token = (await readFile(o.joinTokenFile, 'utf8')).trim();
          } catch (err) {
            throw new CliError(EXIT.failed, `--join-token-file ${o.joinTokenFile}: ${(err as { code?: string }).code ?? String(err)}`);
          }
        }
        if (o.insecureChannel) opts.insecureChannel = true;
        else if (token) opts.joinToken = token;
        const agent = await Agent.start(opts).catch((err: unknown) => {
          throw new CliError(EXIT.failed, err instanceof Error ? err.message : String(err));
        });
        await untilSignal(() => agent.stop());
      },
    );

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
    .action(async (name: string, o: { region?: string; zones?: string; network?: string; tokenTtl: string; hub: string; output: string }) => {
      const format = parseFormat(o.output);
      durationFlag(o.tokenTtl, '--token-ttl');
      const spec: Record<string, unknown> = {};
      if (o.region) spec.region = o.region;
      if (o.zones) spec.zones = o.zones.split(',').map((z) => z.trim()).filter(Boolean);
      if (o.network) spec.network = o.network;
      const body: Record<string, unknown> = { ttl: o.tokenTtl };
      if (Object.keys(spec).length) body.spec = spec;
      const r = await request<{ cluster: string; created: boolean; token?: string; tokenId?: string; expiresAt?: string; message?: string }>(
        o.hub,
        'hub',
        'POST',
        `api/v1alpha1/clusters/${encodeURIComponent(name)}/join-token`,
        { text: JSON.stringify(body), contentType: 'application/json' },
      );
      if (format === 'json' || format === 'yaml') {
        const { print } = await import('./output.js');
        print(r, format, () => '');
        return;
      }
      process.stderr.write(`Cluster ${r.cluster} ${r.created ? 'created' : 'exists'}\n`);
      if (!r.token) {
        process.stderr.write(`${r.message ?? 'no token'}\n`);
        return;
      }
      // The token alone on stdout, so `meshfed cluster add ... > token` works; the hints on stderr.
      process.stdout.write(r.token + '\n');
      process.stderr.write(
        `join token ${r.tokenId} for cluster ${r.cluster}: single use, expires ${r.expiresAt}\n` +
          `start the agent with: meshfed agent --cluster ${r.cluster} --hub <hub agent-channel address> --join-token-file <file with this token>\n`,
      );
    });

  const trust = program.command('trust').description("the mesh's root of trust: status and root rotation");
  trust
    .command('status')
    .description('trust domain, roots and their phase, each cluster\'s intermediate CA and agent certificate, warnings')
    .addOption(hubOption())
    .addOption(outputOption())
    .action(async (o: { hub: string; output: string }) => {
      const { printTrustStatus } = await import('./trust.js');
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
      if (o.activate && o.retire) throw new CliError(EXIT.usage, '--activate and --retire are separate phases: run one, then the other');
      if (o.force && !o.retire) throw new CliError(EXIT.usage, '--force goes with --retire');
      const step = o.activate ? 'activate' : o.retire ? 'retire' : 'add';
      const { printTrustStatus } = await import('./trust.js');
      await printTrustStatus(o, { step, force: o.force === true });
    });

  program
    .command('apply')
    .description('create or update objects from YAML/JSON files (all or nothing)')
    .requiredOption('-f, --filename <file>', "file to apply, '-' for stdin (repeatable)", collect, [])
    .addOption(hubOption())
    .addOption(outputOption())
    .action(async (o: { filename: string[]; hub: string; output: string }) => {
      const format = parseFormat(o.output);
      const objects = await readObjects(o.filename);
      const r = await request<{ results: { object: string; outcome: string }[] }>(o.hub, 'hub', 'POST', 'api/v1alpha1/apply', {
        text: JSON.stringify(objects),
        contentType: 'application/json',
      });
      if (format === 'json' || format === 'yaml') {
        const { print } = await import('./output.js');
        print(r, format, () => '');
      } else for (const x of r.results) process.stdout.write(`${x.object} ${x.outcome}\n`);
    });

  program
    .command('plan')
    .description('dry run: what applying these files would change in every cluster (xDS diff, affected services, traffic split before/after); writes nothing')
    .requiredOption('-f, --filename <file>', "file to plan, '-' for stdin (repeatable)", collect, [])
    .addOption(hubOption())
    .addOption(outputOption())
    .action(async (o: { filename: string[]; hub: string; output: string }) => {
      const format = parseFormat(o.output);
      const objects = await readObjects(o.filename);
      const r = await request<import('../analysis/plan.js').PlanResult>(o.hub, 'hub', 'POST', 'api/v1alpha1/plan', {
        text: JSON.stringify(objects),
        contentType: 'application/json',
      });
      if (format === 'json' || format === 'yaml') {
        const { print } = await import('./output.js');
        print(r, format, () => '');
      } else {
        const { formatPlan } = await import('../analysis/plan.js');
        process.stdout.write(formatPlan(r));
      }
    });

  program
    .command('explain')
    .description('why a call goes where it goes and whether it is allowed: route, endpoints with priorities and shares, access verdict per destination (computed at the hub; writes nothing)')
    .requiredOption('--from <cluster/namespace/workload>', 'the calling workload')
    .requiredOption('--to <service[.namespace]>', 'what it dials (a global, per-cluster or clusterset name; optional :port)')
    .option('--method <pkg.Service/Method>', 'the gRPC method called')
    .option('--service-account <sa>', 'the caller\'s service account, when it is not a registered Workload')
    .option('--with', 'as if the -f files were applied (dry run, like plan)')
    .option('-f, --filename <file>', 'objects to consider applied (repeatable; implies --with)', collect, [])
    .addOption(hubOption())
    .addOption(outputOption())
    .action(async (o: { from: string; to: string; method?: string; serviceAccount?: string; with?: boolean; filename: string[]; hub: string; output: string }) => {
      const format = parseFormat(o.output);
      const parts = o.from.split('/');
      if (parts.length !== 3 || parts.some((x) => !x)) throw new CliError(EXIT.usage, `--from: expected cluster/namespace/workload, got "${o.from}"`);
      if (o.with && o.filename.length === 0) throw new CliError(EXIT.usage, '--with needs -f FILE');
      const [cluster, namespace, workload] = parts as [string, string, string];
      const body: Record<string, unknown> = { from: { cluster, namespace, workload, ...(o.serviceAccount ? { serviceAccount: o.serviceAccount } : {}) }, to: o.to };
      if (o.method) body.method = o.method.replace(/^\//, '');
      if (o.filename.length > 0) body.with = await readObjects(o.filename);
      const r = await request<import('../analysis/explain.js').ExplainResult>(o.hub, 'hub', 'POST', 'api/v1alpha1/explain', { text: JSON.stringify(body), contentType: 'application/json' });
      if (format === 'json' || format === 'yaml') {
        const { print } = await import('./output.js');
        print(r, format, () => '');
      } else {
        const { formatExplain } = await import('../analysis/explain.js');
        process.stdout.write(formatExplain(r));
      }
    });

  program
    .command('get')
    .description('list or show objects: clusters, meshes, services, workloads, globalservices')
    .argument('<kind>', 'kind, plural or short name')
    .argument('[name]', 'object name')
    .option('-n, --namespace <ns>', 'namespace')
    .option('--cluster <name>', 'cluster (discovered kinds)')
    .addOption(hubOption())
    .addOption(outputOption())
    .action(getCommand);

  program
    .command('delete')
    .description('delete objects by kind and name, or those in files')
    .argument('[kind]')
    .argument('[name]')
    .option('-n, --namespace <ns>', 'namespace')
    .option('-f, --filename <file>', 'delete the objects in this file (repeatable)', collect, [])
    .addOption(hubOption())
    .action(async (kind: string | undefined, name: string | undefined, o: { namespace?: string; filename: string[]; hub: string }) => {
      const { findKind } = await import('../registry.js');
      const targets: { plural: string; name: string; namespace?: string }[] = [];
      if (o.filename.length > 0) {
        for (const obj of await readObjects(o.filename)) {
          const t: { plural: string; name: string; namespace?: string } = { plural: findKind(obj.kind)!.plural, name: obj.metadata.name };
          if (obj.metadata.namespace) t.namespace = obj.metadata.namespace;
          targets.push(t);
        }
      } else {
        if (!kind || !name) throw new CliError(EXIT.usage, 'delete needs KIND NAME or -f FILE');
        const def = findKind(kind);
        if (!def) throw new CliError(EXIT.usage, `unknown kind "${kind}"`);
        const t: { plural: string; name: string; namespace?: string } = { plural: def.plural, name };
        if (o.namespace) t.namespace = o.namespace;
        targets.push(t);
      }
      for (const t of targets) {
        const qs = t.namespace ? `?namespace=${encodeURIComponent(t.namespace)}` : '';
        const r = await request<{ results: { object: string; outcome: string }[] }>(
          o.hub,
          'hub',
          'DELETE',
          `api/v1alpha1/${t.plural}/${encodeURIComponent(t.name)}${qs}`,
        );
        for (const x of r.results) process.stdout.write(`${x.object} ${x.outcome}\n`);
      }
    });

  program
    .command('register')
    .description('register a workload (VM or process) with this cluster\'s agent')
    .requiredOption('--service <name>', 'service the workload serves')
    .requiredOption('-n, --namespace <ns>', 'namespace of the service')
    .requiredOption('--address <ip:port>', 'where the workload listens')
    .option('--name <name>', 'workload name (default: <service>-<ip>-<port>)')
    .option('--label <k=v>', 'workload label, e.g. version=v1 (repeatable)', collect, [])
    .option('--service-account <sa>', 'service account (identity)', 'default')
    .option('--zone <zone>', 'zone (default: the cluster\'s first zone)')
    .addOption(new Option('--health <state>', 'health').choices(['healthy', 'unhealthy', 'draining']).default('healthy'))
    .option('--port-name <name>', 'service port name', 'grpc')
    .option('--service-port <port>', 'service port number (default: the workload port)')
    .option('--replace', 'replace an existing registration of the same name')
    .addOption(agentOption())
    .addOption(outputOption())
    .action(
      async (o: {
        service: string;
        namespace: string;
        address: string;
        name?: string;
        label: string[];
        serviceAccount: string;
        zone?: string;
        health: string;
        portName: string;
        servicePort?: string;
        replace?: boolean;
        agent: string;
        output: string;
      }) => {
        const format = parseFormat(o.output);
        const labels: Record<string, string> = {};
        for (const l of o.label) {
          const i = l.indexOf('=');
          if (i <= 0) throw new CliError(EXIT.usage, `--label: expected key=value, got "${l}"`);
          labels[l.slice(0, i)] = l.slice(i + 1);
        }
        const body: Record<string, unknown> = {
          service: o.service,
          namespace: o.namespace,
          address: o.address,
          labels,
          serviceAccount: o.serviceAccount,
          health: o.health.toUpperCase(),
          portName: o.portName,
        };
        if (o.name) body.name = o.name;
        if (o.zone) body.zone = o.zone;
        if (o.replace) body.replace = true;
        if (o.servicePort !== undefined) {
          const n = Number(o.servicePort);
          if (!Number.isInteger(n)) throw new CliError(EXIT.usage, `--service-port: "${o.servicePort}" is not a number`);
          body.servicePort = n;
        }
        const r = await request<{ outcome: string; workload: ApiObject }>(o.agent, 'agent', 'POST', 'v1/workloads', {
          text: JSON.stringify(body),
          contentType: 'application/json',
        });
        const { print } = await import('./output.js');
        print(r, format, () => `workload ${r.workload.metadata.namespace}/${r.workload.metadata.name} ${r.outcome} in cluster ${r.workload.metadata.cluster}\n`);
      },
    );

  program
    .command('deregister')
    .description("remove a workload from this cluster's agent")
    .option('--name <name>', 'workload name')
    .option('-n, --namespace <ns>', 'namespace (with --name)')
    .option('--address <ip:port>', 'every workload at this address')
    .addOption(agentOption())
    .action(async (o: { name?: string; namespace?: string; address?: string; agent: string }) => {
      if (!o.name && !o.address) throw new CliError(EXIT.usage, 'deregister needs --name (and -n) or --address');
      const qs = new URLSearchParams();
      if (o.name) qs.set('name', o.name);
      if (o.namespace) qs.set('namespace', o.namespace);
      if (o.address) qs.set('address', o.address);
      const r = await request<{ removed: ApiObject[] }>(o.agent, 'agent', 'DELETE', `v1/workloads?${qs}`);
      for (const w of r.removed) process.stdout.write(`workload ${w.metadata.namespace}/${w.metadata.name} deregistered\n`);
    });

  program
    .command('bootstrap')
    .description('print the xDS bootstrap JSON for a gRPC workload (use with GRPC_XDS_BOOTSTRAP)')
    .requiredOption('-n, --namespace <ns>', 'namespace of the workload')
    .requiredOption('--name <name>', 'workload name (becomes the node id)')
    .option('--zone <zone>', 'zone of the workload')
    .option('--server', 'for an xDS-enabled gRPC server (adds the server listener template)')
    .option('--envoy', 'an Envoy v3 bootstrap instead (ADS to this cluster\'s agent)')
    .option('--delta', 'with --envoy: incremental (delta) xDS')
    .option('--out <file>', 'write to a file instead of stdout')
    .option('--cert-dir <dir>', 'where `meshfed identity run` writes the certificates: adds the certificate provider mTLS needs')
    .addOption(agentOption())
    .action(async (o: { namespace: string; name: string; zone?: string; server?: boolean; envoy?: boolean; delta?: boolean; out?: string; certDir?: string; agent: string }) => {
      if (o.delta && !o.envoy) throw new CliError(EXIT.usage, '--delta goes with --envoy (gRPC clients use state of the world)');
      if (o.server && o.envoy) throw new CliError(EXIT.usage, '--server is for gRPC servers; an Envoy bootstrap serves both directions');
      const qs = new URLSearchParams({ namespace: o.namespace, name: o.name });
      if (o.zone) qs.set('zone', o.zone);
      if (o.server) qs.set('server', '1');
      if (o.envoy) qs.set('envoy', '1');
      if (o.delta) qs.set('delta', '1');
      if (o.certDir) {
        const { resolve } = await import('node:path');
        qs.set('certDir', resolve(o.certDir));
      }
      const b = await request<unknown>(o.agent, 'agent', 'GET', `v1/bootstrap?${qs}`);
      const text = JSON.stringify(b, null, 2) + '\n';
      if (o.out) {
        const { writeFileDurable } = await import('../util/files.js');
        await writeFileDurable(o.out, text, 0o644);
        process.stderr.write(o.envoy ? `wrote ${o.out}; run envoy -c ${o.out}\n` : `wrote ${o.out}; run the workload with GRPC_XDS_BOOTSTRAP=${o.out}\n`);
      } else process.stdout.write(text);
      // AccessPolicies reach gRPC servers as RBAC filters, which grpc-js-xds only accepts with this variable.
      if (o.server) process.stderr.write('gRPC servers need GRPC_XDS_EXPERIMENTAL_RBAC=true for AccessPolicies (RBAC); without it a listener with access rules is NACKed (see meshfed proxy-status)\n');
    });

  const identity = program.command('identity').description('workload identities: tokens, and the helper that keeps a workload\'s certificates current');
  identity
    .command('token')
    .description('create an identity token for a namespace and service account (give it to `meshfed identity run`)')
    .requiredOption('-n, --namespace <ns>', 'namespace of the workload')
    .requiredOption('--service-account <sa>', 'service account the workload runs as')
    .option('--ttl <seconds>', 'token lifetime (default: until the agent forgets it)')
    .option('--out <file>', 'write the token to a file (mode 0600) instead of stdout')
    .addOption(agentOption())
    .action(async (o: { namespace: string; serviceAccount: string; ttl?: string; out?: string; agent: string }) => {
      const body: Record<string, unknown> = { namespace: o.namespace, serviceAccount: o.serviceAccount };
      if (o.ttl) body.ttlSeconds = nonNegative(o.ttl, '--ttl');
      const r = await request<{ token: string; spiffeId: string; expires?: string }>(o.agent, 'agent', 'POST', 'v1/identity/tokens', { text: JSON.stringify(body), contentType: 'application/json' });
      if (o.out) {
        const { writeFileDurable } = await import('../util/files.js');
        await writeFileDurable(o.out, r.token + '\n', 0o600);
        process.stderr.write(`wrote a token for ${r.spiffeId} to ${o.out}${r.expires ? ` (expires ${r.expires})` : ''}\n`);
      } else process.stdout.write(`${r.token}\n`);
    });
  identity
    .command('run')
    .description("beside a workload: generate its key, get it signed by this cluster's agent, write cert.pem/key.pem/ca.pem and renew them")
    .requiredOption('--dir <dir>', 'directory for cert.pem, key.pem and ca.pem (point `meshfed bootstrap --cert-dir` at it)')
    .option('--token-file <file>', 'identity token file (or env MESHFED_IDENTITY_TOKEN)')
    .option('--once', 'exit after writing the first certificate')
    .addOption(agentOption())
    .action(async (o: { dir: string; tokenFile?: string; once?: boolean; agent: string }) => {
      const token = o.tokenFile ? (await readFile(o.tokenFile, 'utf8')).trim() : process.env.MESHFED_IDENTITY_TOKEN;
      if (!token) throw new CliError(EXIT.usage, 'pass --token-file or set MESHFED_IDENTITY_TOKEN');
      const { runSidecar } = await import('../identity/sidecar.js');
      const ac = new AbortController();
      process.once('SIGTERM', () => ac.abort());
      process.once('SIGINT', () => ac.abort());
      try {
        await runSidecar({ agentUrl: o.agent, token, dir: o.dir, once: o.once ?? false, signal: ac.signal });
      } catch (err) {
        throw new CliError(EXIT.failed, (err as Error).message);
      }
    });

  program
    .command('status')
    .description("this cluster's agent: readiness, hub connection, what it serves")
    .addOption(agentOption())
    .addOption(outputOption())
    .action(printAgentStatus);

  program
    .command('proxy-status')
    .description('every proxy connected to every agent, and its per-type sync state')
    .addOption(hubOption())
    .option('--agent <url>', 'ask these agents directly instead of the hub (repeatable)', collect, [])
    .addOption(outputOption())
    .action(printProxyStatus);

  program
    .command('crds')
    .description('print the CustomResourceDefinitions of every kind (for Kubernetes mode)')
    .action(async () => {
      const { crdFor } = await import('../api/index.js');
      const { KINDS } = await import('../registry.js');
      const { stringify } = await import('yaml');
      process.stdout.write(KINDS.map((k) => stringify(crdFor(k))).join('---\n'));
    });

  program
    .command('demo')
    .description('run hub + three clusters + helloworld v1/v2/v3 + a client, and show traffic across clusters')
    .option('--duration <seconds>', 'stop after this many seconds (default: until Ctrl-C)')
    .option('--rate <n>', 'client calls per second', '50')
    .action(async (o: { duration?: string; rate: string }) => {
      const { runDemo } = await import('../demo/demo.js');
      const duration = o.duration === undefined ? undefined : Number(o.duration);
      if (duration !== undefined && !(duration > 0)) throw new CliError(EXIT.usage, `--duration: "${o.duration}" is not a positive number`);
      const rate = Number(o.rate);
      if (!(rate > 0)) throw new CliError(EXIT.usage, `--rate: "${o.rate}" is not a positive number`);
      const code = await runDemo({ ...(duration !== undefined ? { durationSec: duration } : {}), rate });
      process.exit(code);
    });

  return program;
}

async function readObjects(files: string[]): Promise<ApiObject[]> {
  if (files.length === 0) throw new CliError(EXIT.usage, '-f: at least one file is required');
  const all: ApiObject[] = [];
  const problems: InvalidInputError[] = [];
  for (const f of files) {
    let text: string;
    try {
      text = f === '-' ? await readStdin() : await readFile(f, 'utf8');
    } catch (err) {
      throw new CliError(EXIT.failed, `cannot read ${f}: ${(err as { code?: string }).code ?? String(err)}`);
    }
    try {
      all.push(...parseAndValidate(text, f === '-' ? 'stdin' : f));
    } catch (err) {
      if (err instanceof InvalidInputError) problems.push(err);
      else throw err;
    }
  }
  if (problems.length > 0) throw new InvalidInputError(problems.flatMap((p) => p.problems));
  if (all.length === 0) throw new CliError(EXIT.failed, `no objects in ${files.join(', ')}`);
  return all;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Runs until SIGINT/SIGTERM, then stops cleanly. */
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
