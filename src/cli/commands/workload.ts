// Workloads at this cluster's agent: `meshfed register`, `deregister`,
// `bootstrap` (the xDS bootstrap a gRPC workload or an Envoy starts with) and
// `identity token|run` (workload certificates). All of them talk to the agent
// (--agent), never to the hub.
import { Option, type Command } from 'commander';
import { readFile } from 'node:fs/promises';
import { clusterOf, type ApiObject } from '../../api/index.js';
import { errorMessage, MeshfedError } from '../../util/errors.js';
import { agentOption, collect, durationFlag, integer, outputOption } from '../flags.js';
import { request, target } from '../http.js';
import { parseFormat, print } from '../output.js';

interface RegisterFlags {
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
  healthCheck?: string;
  healthCheckPort?: string;
  healthCheckInterval?: string;
  healthCheckTimeout?: string;
  agent: string;
  output: string;
}

interface BootstrapFlags {
  namespace: string;
  name: string;
  zone?: string;
  server?: boolean;
  envoy?: boolean;
  delta?: boolean;
  out?: string;
  certDir?: string;
  agent: string;
}

export function addWorkloadCommands(program: Command): void {
  program
    .command('register')
    .description("register a workload (VM or process) with this cluster's agent")
    .requiredOption('--service <name>', 'service the workload serves')
    .requiredOption('-n, --namespace <ns>', 'namespace of the service')
    .requiredOption('--address <ip:port>', 'where the workload listens')
    .option('--name <name>', 'workload name (default: <service>-<ip>-<port>)')
    .option('--label <k=v>', 'workload label, e.g. version=v1 (repeatable)', collect, [])
    .option('--service-account <sa>', 'service account (identity)', 'default')
    .option('--zone <zone>', "zone (default: the cluster's first zone)")
    .addOption(new Option('--health <state>', 'health').choices(['healthy', 'unhealthy', 'draining']).default('healthy'))
    .option('--port-name <name>', 'service port name', 'grpc')
    .option('--service-port <port>', 'service port number (default: the workload port)')
    .option('--replace', 'replace an existing registration of the same name')
    .option('--health-check <tcp|grpc[:service]>', 'the agent checks the workload (TCP connect, or the gRPC health protocol): failing makes it UNHEALTHY everywhere')
    .option('--health-check-port <port>', "port to check (default: the workload's), e.g. a plaintext health port beside an mTLS one")
    .option('--health-check-interval <duration>', 'between checks (default 5s)')
    .option('--health-check-timeout <duration>', 'per check (default 1s)')
    .addOption(agentOption())
    .addOption(outputOption())
    .action(register);

  program
    .command('deregister')
    .description("remove a workload from this cluster's agent")
    .option('--name <name>', 'workload name')
    .option('-n, --namespace <ns>', 'namespace (with --name)')
    .option('--address <ip:port>', 'every workload at this address')
    .addOption(agentOption())
    .action(async (o: { name?: string; namespace?: string; address?: string; agent: string }) => {
      if (!o.name && !o.address) throw new MeshfedError('usage', 'deregister needs --name (and -n) or --address');
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
    .option('--envoy', "an Envoy v3 bootstrap instead (ADS to this cluster's agent)")
    .option('--delta', 'with --envoy: incremental (delta) xDS')
    .option('--out <file>', 'write to a file instead of stdout')
    .option('--cert-dir <dir>', 'where `meshfed identity run` writes the certificates: adds the certificate provider mTLS needs')
    .addOption(agentOption())
    .action(bootstrap);

  const identity = program.command('identity').description("workload identities: tokens, and the helper that keeps a workload's certificates current");
  identity
    .command('token')
    .description('create an identity token for a namespace and service account (give it to `meshfed identity run`)')
    .requiredOption('-n, --namespace <ns>', 'namespace of the workload')
    .requiredOption('--service-account <sa>', 'service account the workload runs as')
    .option('--ttl <duration>', 'token lifetime (e.g. 30m, 1h, 7d)', '1h')
    .option('--out <file>', 'write the token to a file (mode 0600) instead of stdout')
    .addOption(agentOption())
    .action(async (o: { namespace: string; serviceAccount: string; ttl: string; out?: string; agent: string }) => {
      const body: Record<string, unknown> = { namespace: o.namespace, serviceAccount: o.serviceAccount, ttlSeconds: durationFlag(o.ttl, '--ttl') / 1000 };
      const r = await request<{ token: string; spiffeId: string; expires?: string }>(o.agent, 'agent', 'POST', 'v1/identity/tokens', {
        text: JSON.stringify(body),
        contentType: 'application/json',
      });
      if (o.out) {
        const { writeFileDurable } = await import('../../util/files.js');
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
      if (!token) throw new MeshfedError('usage', 'pass --token-file or set MESHFED_IDENTITY_TOKEN');
      const { runSidecar } = await import('../../identity/sidecar.js');
      const ac = new AbortController();
      process.once('SIGTERM', () => ac.abort());
      process.once('SIGINT', () => ac.abort());
      try {
        await runSidecar({ agentUrl: target('agent', o.agent).base, token, dir: o.dir, once: o.once ?? false, signal: ac.signal });
      } catch (err) {
        // Whatever stopped the helper fails the command (exit 1), as before.
        throw new MeshfedError('internal', errorMessage(err), { cause: err });
      }
    });
}

async function register(o: RegisterFlags): Promise<void> {
  const format = parseFormat(o.output);
  const labels: Record<string, string> = {};
  for (const l of o.label) {
    const i = l.indexOf('=');
    if (i <= 0) throw new MeshfedError('usage', `--label: expected key=value, got "${l}"`);
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
  if (o.servicePort !== undefined) body.servicePort = integer(o.servicePort, '--service-port');
  const check = healthCheckOf(o);
  if (check) body.healthCheck = check;
  const r = await request<{ outcome: string; workload: ApiObject }>(o.agent, 'agent', 'POST', 'v1/workloads', {
    text: JSON.stringify(body),
    contentType: 'application/json',
  });
  print(r, format, () => `workload ${r.workload.metadata.namespace}/${r.workload.metadata.name} ${r.outcome} in cluster ${clusterOf(r.workload) ?? ''}\n`);
}

/** --health-check and its companions as the registration's healthCheck (the agent checks the rest). */
function healthCheckOf(o: RegisterFlags): Record<string, unknown> | undefined {
  if (!o.healthCheck) {
    const stray = (['healthCheckPort', 'healthCheckInterval', 'healthCheckTimeout'] as const).find((f) => o[f] !== undefined);
    if (stray) throw new MeshfedError('usage', `--${stray.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} needs --health-check tcp|grpc`);
    return undefined;
  }
  const m = /^(tcp|grpc)(?::(.*))?$/.exec(o.healthCheck);
  if (!m || (m[1] === 'tcp' && m[2] !== undefined)) throw new MeshfedError('usage', `--health-check: expected tcp, grpc or grpc:SERVICE, got "${o.healthCheck}"`);
  const check: Record<string, unknown> = { type: m[1] };
  if (m[2]) check.service = m[2];
  if (o.healthCheckPort !== undefined) check.port = integer(o.healthCheckPort, '--health-check-port');
  for (const [flag, field] of [
    ['healthCheckInterval', 'interval'],
    ['healthCheckTimeout', 'timeout'],
  ] as const) {
    const v = o[flag];
    if (v === undefined) continue;
    durationFlag(v, `--${flag.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`);
    check[field] = v;
  }
  return check;
}

async function bootstrap(o: BootstrapFlags): Promise<void> {
  if (o.delta && !o.envoy) throw new MeshfedError('usage', '--delta goes with --envoy (gRPC clients use state of the world)');
  if (o.server && o.envoy) throw new MeshfedError('usage', '--server is for gRPC servers; an Envoy bootstrap serves both directions');
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
    const { writeFileDurable } = await import('../../util/files.js');
    await writeFileDurable(o.out, text, 0o644);
    process.stderr.write(o.envoy ? `wrote ${o.out}; run envoy -c ${o.out}\n` : `wrote ${o.out}; run the workload with GRPC_XDS_BOOTSTRAP=${o.out}\n`);
  } else process.stdout.write(text);
  // AccessPolicies reach gRPC servers as RBAC filters, which grpc-js-xds only accepts with this variable.
  if (o.server) process.stderr.write('gRPC servers need GRPC_XDS_EXPERIMENTAL_RBAC=true for AccessPolicies (RBAC); without it a listener with access rules is NACKed (see meshfed proxy-status)\n');
}
