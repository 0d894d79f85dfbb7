// The CLI against real hub and agent processes: output formats, bad input and
// exit codes. Every bad input must name the problem and change nothing.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { runMeshfed, type CliResult } from '../helpers/cli.js';
import { eventually } from '../helpers/eventually.js';
import { DEMO_CLUSTERS, LocalFleet, clusterObject } from '../../src/demo/fleet.js';
import { freePort, meshfedBin } from '../../src/demo/processes.js';
import { packageRoot } from '../../src/util/paths.js';

let fleet: LocalFleet;

before(async () => {
  fleet = await LocalFleet.create();
  await fleet.startHub();
  await fleet.apply([clusterObject(DEMO_CLUSTERS[0]!)]);
  await fleet.startAgent(DEMO_CLUSTERS[0]!);
});

after(async () => {
  await fleet?.close();
});

function cliEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...process.env, ...fleet.cliEnv('cluster1'), MESHFED_HUB: fleet.hubUrl, MESHFED_AGENT: fleet.agent('cluster1').apiUrl, ...extra };
}

function meshfed(args: string[], opts: { agent?: boolean; input?: string; env?: Record<string, string> } = {}): Promise<CliResult> {
  return runMeshfed(args, cliEnv(opts.env) as Record<string, string>, opts.input);
}

async function file(name: string, text: string): Promise<string> {
  const f = join(fleet.dir, name);
  await writeFile(f, text);
  return f;
}

const GOOD = `apiVersion: meshfed.io/v1alpha1
kind: Cluster
metadata: {name: cluster9}
spec: {region: eu-west1, zones: [eu-west1-a]}
`;

test('apply creates, re-apply is unchanged, get prints a table and -o json|yaml', async () => {
  const f = await file('good.yaml', GOOD);
  let r = await meshfed(['apply', '-f', f]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'Cluster cluster9 created\n');
  r = await meshfed(['apply', '-f', f]);
  assert.equal(r.stdout, 'Cluster cluster9 unchanged\n');
  r = await meshfed(['get', 'clusters']);
  assert.equal(r.code, 0);
  const lines = r.stdout.trim().split('\n');
  assert.match(lines[0]!, /^NAME\s+NETWORK\s+REGION\s+ZONES\s+AGENT\s+LIVENESS\s+SERVICES\s+WORKLOADS\s+AGE$/);
  assert.match(r.stdout, /cluster1\s+net1\s+us-east1\s+us-east1-a\s+Connected\s+Live\s/);
  assert.match(r.stdout, /cluster9\s+default\s+eu-west1\s+eu-west1-a\s+Never\s+-\s/);
  r = await meshfed(['get', 'cluster', 'cluster9', '-o', 'json']);
  assert.equal((JSON.parse(r.stdout) as { spec: { region: string } }).spec.region, 'eu-west1');
  r = await meshfed(['get', 'cl', '-o', 'yaml']);
  assert.deepEqual(
    (parseYaml(r.stdout) as { items: { metadata: { name: string } }[] }).items.map((i) => i.metadata.name),
    ['cluster1', 'cluster9'],
  );
  r = await meshfed(['delete', 'cluster', 'cluster9']);
  assert.equal(r.code, 0);
  assert.equal(r.stdout, 'Cluster cluster9 deleted\n');
});

test('malformed YAML, unknown kind and invalid field: exit 1, the problem named, nothing applied', async () => {
  const malformed = await file('malformed.yaml', GOOD + '---\nkind: [oops\n');
  let r = await meshfed(['apply', '-f', malformed]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /malformed\.yaml document 2:\n\s+\/: malformed YAML/);

  const unknown = await file('unknown.yaml', GOOD + '---\napiVersion: meshfed.io/v1alpha1\nkind: Gateway\nmetadata: {name: g}\nspec: {}\n');
  r = await meshfed(['apply', '-f', unknown]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /unknown\.yaml document 2 \(Gateway g\):\n\s+\/kind: unknown kind "Gateway"/);

  const invalid = await file('invalid.yaml', GOOD + '---\napiVersion: meshfed.io/v1alpha1\nkind: Cluster\nmetadata: {name: Bad_Name}\nspec: {region: r, zones: [z], netwrk: x}\n');
  r = await meshfed(['apply', '-f', invalid]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /invalid\.yaml document 2 \(Cluster Bad_Name\):/);
  // In words: the rule a name breaks, not its regular expression; the field meant.
  assert.match(r.stderr, /\/metadata\/name: "Bad_Name" must be a DNS label: lowercase letters, digits and '-'/);
  assert.match(r.stderr, /\/spec\/netwrk: unknown field "netwrk"; did you mean "network"\?/);

  // The valid first document of each file was not applied.
  r = await meshfed(['get', 'cluster', 'cluster9']);
  assert.equal(r.code, 4);
  assert.match(r.stderr, /Cluster "cluster9" not found/);
});

test('apply warns what plan finds (exit 0, stored); --strict makes warnings errors (exit 1, nothing stored)', async () => {
  // rebel-base runs in cluster1 only; cluster8 is a member without its endpoints.
  let r = await meshfed(['register', '--service', 'rebel-base', '-n', 'warn', '--address', '127.0.0.1:6101']);
  assert.equal(r.code, 0, r.stderr);
  await eventually('the hub to get the workload', async () => {
    const g = await meshfed(['get', 'workloads', '-n', 'warn', '-o', 'json']);
    return (JSON.parse(g.stdout) as { items: unknown[] }).items.length === 1 ? true : undefined;
  });
  const policy = (name: string) => `---
apiVersion: meshfed.io/v1alpha1
kind: TrafficPolicy
metadata: {name: ${name}, namespace: warn}
spec:
  destinations: [{name: rebel-base}]
  routes: [{split: [{cluster: cluster1, weight: 80}, {cluster: cluster8, weight: 20}]}]
`;
  const cluster8 = 'apiVersion: meshfed.io/v1alpha1\nkind: Cluster\nmetadata: {name: cluster8}\nspec: {region: us-east1, zones: [us-east1-a]}\n';
  const failover = '---\napiVersion: meshfed.io/v1alpha1\nkind: FailoverPolicy\nmetadata: {name: order, namespace: warn}\nspec: {destinations: [{name: rebel-base}], clusters: [cluster1, cluster3]}\n';
  const splitWarning = 'Warning: TrafficPolicy warn/split: spec.routes[0].split[1].cluster: cluster "cluster8" has no endpoints of rebel-base.warn: its 20% of calls would fail (UNAVAILABLE)';

  // --strict: refused as a whole; neither the Cluster nor the policies were written.
  const all = await file('warn.yaml', cluster8 + policy('split') + failover);
  r = await meshfed(['apply', '--strict', '-f', all]);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.ok(r.stderr.includes(splitWarning), r.stderr);
  assert.match(r.stderr, /FailoverPolicy warn\/order: spec\.clusters\[1\]: no member cluster "cluster3"/);
  for (const [kind, name] of [
    ['cluster', 'cluster8'],
    ['trafficpolicy', 'split'],
    ['failoverpolicy', 'order'],
  ] as const) {
    assert.equal((await meshfed(['get', kind, name, '-n', 'warn'])).code, 4, `${kind} ${name} was stored`);
  }

  // plan shows the same lines.
  r = await meshfed(['plan', '-f', all]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.stdout.includes(`  ${splitWarning}\n`), r.stdout);

  // Without --strict: applied, exit 0, each warning on stderr, the results on stdout.
  r = await meshfed(['apply', '-f', all]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'Cluster cluster8 created\nTrafficPolicy warn/split created\nFailoverPolicy warn/order created\n');
  assert.ok(r.stderr.includes(splitWarning + '\n'), r.stderr);
  assert.match(r.stderr, /^Warning: FailoverPolicy warn\/order: spec\.clusters\[1\]: no member cluster "cluster3"$/m);
  assert.equal((await meshfed(['get', 'trafficpolicy', 'split', '-n', 'warn'])).code, 0);
  // The API answers them as Kubernetes does too: one Warning: 299 header each (quotes escaped), beside warnings[] in the body.
  const res = await fleet.hubFetch('/api/v1alpha1/apply', { method: 'POST', body: await readFile(all, 'utf8'), headers: { 'content-type': 'application/yaml' } });
  assert.equal(res.status, 200);
  assert.equal(((await res.json()) as { warnings: string[] }).warnings.length, 2);
  assert.ok((res.headers.get('warning') ?? '').startsWith(`299 - "${splitWarning.slice('Warning: '.length).replace(/["\\]/g, (c) => `\\${c}`)}"`), res.headers.get('warning') ?? '(none)');

  // A clean apply under --strict goes through.
  r = await meshfed([
    'apply',
    '--strict',
    '-f',
    await file('clean.yaml', policy('split').replace('{cluster: cluster1, weight: 80}, {cluster: cluster8, weight: 20}', '{cluster: cluster1, weight: 100}')),
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');

  await meshfed(['delete', 'trafficpolicy', 'split', '-n', 'warn']);
  await meshfed(['delete', 'failoverpolicy', 'order', '-n', 'warn']);
  await meshfed(['delete', 'cluster', 'cluster8']);
  await meshfed(['deregister', '--address', '127.0.0.1:6101']);
});

test('discovered kinds are read-only through the API', async () => {
  const f = await file('svc.yaml', 'apiVersion: meshfed.io/v1alpha1\nkind: Service\nmetadata: {name: s, namespace: n}\nspec: {cluster: cluster1, ports: [{name: grpc, port: 1}]}\n');
  const r = await meshfed(['apply', '-f', f]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /Service objects are reported by agents and read-only/);
});

test('register: created, unchanged, conflicting; deregister of nothing is not found', async () => {
  const reg = ['register', '--service', 'echo', '-n', 'tools', '--address', '127.0.0.1:6001', '--label', 'version=v1'];
  let r = await meshfed(reg);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'workload tools/echo-127-0-0-1-6001 created in cluster cluster1\n');
  r = await meshfed(reg);
  assert.match(r.stdout, /unchanged/);
  r = await meshfed([...reg.slice(0, -2), '--label', 'version=v2']);
  assert.equal(r.code, 5);
  assert.match(r.stderr, /already registered with a different definition/);
  r = await meshfed(['register', '--service', 'other', '-n', 'tools', '--address', '127.0.0.1:6001']);
  assert.equal(r.code, 5);
  assert.match(r.stderr, /address 127\.0\.0\.1:6001 is already registered as workload tools\/echo-127-0-0-1-6001/);
  r = await meshfed(['register', '--service', 'echo', '-n', 'tools', '--address', 'localhost:6001']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /"localhost" is not an IP address/);
  r = await meshfed(['register', '--service', 'echo', '-n', 'tools', '--address', '127.0.0.1:6002', '--zone', 'mars']);
  assert.match(r.stderr, /zone: "mars" is not a zone of cluster cluster1 \(us-east1-a\)/);

  // The hub receives the agent's report.
  const deadline = Date.now() + 10_000;
  for (;;) {
    r = await meshfed(['get', 'workloads', '-n', 'tools', '-o', 'json']);
    if ((JSON.parse(r.stdout) as { items: unknown[] }).items.length === 1) break;
    assert.ok(Date.now() < deadline, 'the hub never got the report');
    await new Promise((res) => setTimeout(res, 100));
  }
  r = await meshfed(['get', 'globalservices']);
  assert.match(r.stdout, /echo\.tools\s+grpc:6001\s+cluster1\s+1\/1\s+-/);

  r = await meshfed(['deregister', '--address', '127.0.0.1:6001']);
  assert.equal(r.code, 0);
  r = await meshfed(['deregister', '--address', '127.0.0.1:6001']);
  assert.equal(r.code, 4);
  assert.match(r.stderr, /no registered workload matches 127\.0\.0\.1:6001/);
});

test('an unreachable hub is named, with exit code 3', async () => {
  const port = await freePort();
  const r = await meshfed(['get', 'clusters', '--hub', `http://127.0.0.1:${port}`]);
  assert.equal(r.code, 3);
  assert.match(r.stderr, new RegExp(`cannot reach the hub at http://127\\.0\\.0\\.1:${port} \\(ECONNREFUSED\\)`));
});

test('usage errors exit 2 with one line: the error and the help of the command to read', async () => {
  const cases: [string[], RegExp][] = [
    [['get'], /^error: missing required argument 'kind' \(see meshfed get --help\)\n$/],
    [['get', 'frobs'], /^error: unknown kind "frobs"; .* \(see meshfed get --help\)\n$/],
    [['get', 'clusters', '-o', 'xml'], /^error: -o: unknown output format "xml" .* \(see meshfed get --help\)\n$/],
    [['frob'], /^error: unknown command 'frob' \(see meshfed --help\)\n$/],
    [['auth', 'token', 'create'], /^error: missing required argument 'user' \(see meshfed auth token create --help\)\n$/],
    [['delete'], /^error: delete needs KIND NAME, KIND\/NAME, KIND -l SELECTOR, KIND --all or -f FILE \(see meshfed delete --help\)\n$/],
    [['get', 'clusters', '--frob'], /^error: unknown option '--frob' \(see meshfed get --help\)\n$/],
  ];
  for (const [args, stderr] of cases) {
    const r = await meshfed(args);
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.stderr, stderr);
    assert.equal(r.stdout, '');
  }
});

test('version and --version: the client version from package.json, the hub version from its /healthz', async () => {
  const { version } = JSON.parse(await readFile(join(packageRoot(), 'package.json'), 'utf8')) as { version: string };
  let r = await meshfed(['--version']);
  assert.equal(r.code, 0);
  assert.equal(r.stdout, `${version}\n`);
  r = await meshfed(['version']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `client: ${version}\nhub:    ${version} (${fleet.hubUrl})\n`);
  r = await meshfed(['version', '-o', 'json']);
  assert.deepEqual(JSON.parse(r.stdout), { client: { version }, hub: { url: fleet.hubUrl, version } });
  // No hub: the client version still, and why the hub's is missing.
  const port = await freePort();
  r = await meshfed(['version', '--hub', `127.0.0.1:${port}`]);
  assert.equal(r.code, 0);
  assert.equal(r.stdout, `client: ${version}\nhub:    unavailable: cannot reach the hub at https://127.0.0.1:${port} (ECONNREFUSED)\n`);
  r = await meshfed(['version', '--client', '--hub', `127.0.0.1:${port}`]);
  assert.equal(r.stdout, `client: ${version}\n`);
});

test('an address is a URL or HOST:PORT (https:// assumed for the hub, http:// for the agent); anything else is one clear line', async () => {
  const hub = new URL(fleet.hubUrl);
  assert.equal(hub.protocol, 'https:');
  let r = await meshfed(['get', 'clusters', '-o', 'name', '--hub', hub.host]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^cluster\/cluster1$/m);
  r = await meshfed(['get', 'clusters', '-o', 'name'], { env: { MESHFED_HUB: hub.host } });
  assert.equal(r.code, 0, r.stderr);
  const agent = new URL(fleet.agent('cluster1').apiUrl);
  assert.equal(agent.protocol, 'http:');
  r = await meshfed(['status', '--agent', agent.host]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /ready:\s+yes/);
  r = await meshfed(['proxy-status', '--agent', agent.host, '-o', 'json']);
  assert.equal(r.code, 0, r.stderr);
  for (const [flag, value, why] of [
    ['--hub', 'hub.example', 'is neither a URL nor HOST:PORT'],
    ['--hub', 'ftp://hub.example:21', 'has scheme ftp; use http or https'],
    ['--hub', '127.0.0.1:99999', 'port 99999 is out of range'],
    ['--agent', 'http://[::1', 'is not a valid URL'],
  ] as const) {
    r = await meshfed(flag === '--hub' ? ['get', 'clusters', flag, value] : ['status', flag, value]);
    assert.equal(r.code, 1, `${flag} ${value}`);
    assert.equal(r.stderr.split('\n').length, 2, r.stderr);
    assert.ok(r.stderr.startsWith(`error: ${flag}: "${value}" ${why} (e.g. `), r.stderr);
  }
});

test('get of several objects is a kind: List that apply -f - takes back; -o name; -n does not confuse cluster-scoped kinds', async () => {
  const two = await file('two.yaml', GOOD.replace('cluster9', 'cluster5') + '---\n' + GOOD.replace('cluster9', 'cluster6'));
  assert.equal((await meshfed(['apply', '-f', two])).code, 0);
  const yaml = await meshfed(['get', 'clusters', '-o', 'yaml']);
  const list = parseYaml(yaml.stdout) as { apiVersion: string; kind: string; items: { kind: string; metadata: { name: string } }[] };
  assert.equal(list.kind, 'List');
  assert.equal(list.apiVersion, 'meshfed.io/v1alpha1');
  const names = list.items.map((i) => i.metadata.name);
  assert.ok(names.includes('cluster1') && names.includes('cluster5') && names.includes('cluster6'), names.join());
  const json = JSON.parse((await meshfed(['get', 'clusters', '-o', 'json'])).stdout) as typeof list;
  assert.deepEqual({ ...json, items: json.items.map((i) => i.metadata.name) }, { ...list, items: names });
  assert.equal((await meshfed(['get', 'clusters', '-o', 'name'])).stdout, names.map((n) => `cluster/${n}\n`).join(''));

  // The round trip: what get printed, applied back, recreates what was deleted and leaves the rest unchanged.
  assert.equal((await meshfed(['delete', 'cluster', 'cluster6'])).code, 0);
  let r = await meshfed(['apply', '-f', '-'], { input: yaml.stdout });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, names.map((n) => `Cluster ${n} ${n === 'cluster6' ? 'created' : 'unchanged'}\n`).join(''));

  // A cluster-scoped kind under -n: the namespace is ignored, for a list, one object and a delete.
  r = await meshfed(['get', 'clusters', '-n', 'tools', '-o', 'name']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, names.map((n) => `cluster/${n}\n`).join(''));
  r = await meshfed(['get', 'cluster', 'cluster5', '-n', 'tools', '-o', 'name']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'cluster/cluster5\n');
  // A namespaced kind still filters by it.
  r = await meshfed(['get', 'workloads', '-n', 'no-such-namespace']);
  assert.equal(r.code, 0);
  assert.equal(r.stderr, 'no workloads found in namespace no-such-namespace\n');

  // delete KIND/NAME (as -o name prints), -f FILE, and --ignore-not-found.
  r = await meshfed(['delete', 'cluster/cluster5', '-n', 'tools']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'Cluster cluster5 deleted\n');
  r = await meshfed(['delete', 'cluster', 'cluster5']);
  assert.equal(r.code, 4);
  assert.match(r.stderr, /Cluster "cluster5" not found/);
  r = await meshfed(['delete', 'cluster', 'cluster5', '--ignore-not-found']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout + r.stderr, '');
  r = await meshfed(['delete', '-f', two, '--ignore-not-found']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'Cluster cluster6 deleted\n');
  r = await meshfed(['delete', '-f', two]);
  assert.equal(r.code, 4);
});

test('identity token --ttl takes a duration like every other duration flag', async () => {
  let r = await meshfed(['identity', 'token', '-n', 'tools', '--service-account', 'echo', '--ttl', '1h']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^\S+\n$/);
  r = await meshfed(['identity', 'token', '-n', 'tools', '--service-account', 'echo', '--ttl', '1 hour']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^error: --ttl: "1 hour" is not a duration \(e\.g\. 30m, 1h, 7d\) \(see meshfed identity token --help\)\n$/);
});

test('an agent for an unknown cluster, or with the wrong topology, is refused with the reason', async () => {
  // A token made for a Cluster deleted since: the join is refused, naming why.
  const nopeSpec = { name: 'nope', network: 'net1', region: 'r', zones: ['z'] };
  await fleet.addCluster(nopeSpec);
  assert.equal((await meshfed(['delete', 'cluster', 'nope'])).code, 0);
  const nope = await fleet.startAgent(nopeSpec, { waitReady: false });
  await fleet.waitAgent('nope', (s) => /join refused by the hub: join token [0-9a-f]+ was revoked at .*: cluster "nope" was deleted at the hub/.test(s.hub.lastError ?? ''));
  assert.equal((await fleet.agentStatus('nope')).ready, false);
  await fleet.procs.stop(nope.child);

  await fleet.apply([clusterObject({ name: 'cluster7', network: 'net1', region: 'us-east1', zones: ['a'] })]);
  const wrong = await fleet.startAgent({ name: 'cluster7', network: 'net1', region: 'eu-west1', zones: ['a'] }, { waitReady: false });
  await fleet.waitAgent('cluster7', (s) => /region is "us-east1" at the hub, agent says "eu-west1"/.test(s.hub.lastError ?? ''));
  const st = await meshfed(['status', '--agent', wrong.apiUrl], { env: { MESHFED_AGENT_TOKEN: fleet.agentToken('cluster7') } });
  assert.match(st.stdout, /ready:\s+no/);
  assert.match(st.stdout, /DISCONNECTED: hub rejected this agent \(TopologyMismatch\)/);
  await fleet.procs.stop(wrong.child);
});

test('bootstrap prints a gRPC xDS bootstrap for this cluster; proxy-status lists connected proxies', async () => {
  const r = await meshfed(['bootstrap', '-n', 'sample', '--name', 'w1', '--server']);
  assert.equal(r.code, 0, r.stderr);
  const b = JSON.parse(r.stdout) as {
    xds_servers: { server_uri: string; server_features: string[] }[];
    node: { id: string; locality: Record<string, string> };
    server_listener_resource_name_template: string;
  };
  assert.equal(b.xds_servers[0]!.server_uri, `127.0.0.1:${fleet.agent('cluster1').xdsPort}`);
  assert.ok(b.xds_servers[0]!.server_features.includes('ignore_resource_deletion'));
  assert.equal(b.node.id, 'cluster1~sample~w1');
  assert.deepEqual(b.node.locality, { region: 'us-east1', zone: 'us-east1-a', sub_zone: 'cluster1' });
  assert.equal(b.server_listener_resource_name_template, 'grpc/server?xds.resource.listening_address=%s');

  // Envoy: no Envoy binary can run here; the bootstrap is checked against Envoy's own protos.
  const envoy = await meshfed(['bootstrap', '-n', 'sample', '--name', 'gw', '--envoy', '--delta']);
  assert.equal(envoy.code, 0, envoy.stderr);
  const eb = JSON.parse(envoy.stdout) as { dynamic_resources: { ads_config: { api_type: string } }; node: { id: string } };
  assert.equal(eb.dynamic_resources.ads_config.api_type, 'DELTA_GRPC');
  assert.equal(eb.node.id, 'cluster1~sample~gw');
  const { encodeEnvoyBootstrap } = await import('../../src/xds/bootstrap.js');
  assert.ok(encodeEnvoyBootstrap(eb).length > 0);
  assert.equal((await meshfed(['bootstrap', '-n', 'sample', '--name', 'gw', '--delta'])).code, 2);

  await fleet.startServer('cluster1', { name: 'ps-server', version: 'v1', identity: true });
  const direct = await meshfed(['proxy-status', '--agent', fleet.agent('cluster1').apiUrl]);
  assert.equal(direct.code, 0, direct.stderr);
  assert.match(direct.stdout, /CLUSTER\s+PROXY\s+LDS\s+RDS\s+CDS\s+EDS\s+LAST-ACK\s+CONNECTED/);
  assert.match(direct.stdout, /cluster1\s+cluster1~sample~ps-server\s+SYNCED \(\d+\)\s+-\s+-\s+-\s+\d+\.\ds ago/);
  // Through the hub: every cluster's proxies, and how far each agent lags the hub.
  const deadline = Date.now() + 10_000;
  for (;;) {
    const r = await meshfed(['proxy-status', '-o', 'json']);
    const items = (JSON.parse(r.stdout) as { items: { nodeId: string; behindRevisions: number; types: Record<string, { state: string }> }[] }).items;
    const p = items.find((i) => i.nodeId === 'cluster1~sample~ps-server');
    if (p && p.types.LDS?.state === 'SYNCED' && p.behindRevisions === 0) break;
    assert.ok(Date.now() < deadline, `the hub never listed the proxy as synced: ${r.stdout}`);
    await new Promise((res) => setTimeout(res, 200));
  }
  const viaHub = await meshfed(['proxy-status']);
  assert.match(viaHub.stdout, /CLUSTER\s+PROXY\s+LDS\s+RDS\s+CDS\s+EDS\s+LAST-ACK\s+BEHIND\s+CONNECTED/);
});

test('a port already in use stops the hub or agent at start with the address named', async () => {
  const busy = new URL(fleet.hubUrl).port;
  let r = await meshfed(['hub', '--data-dir', join(fleet.dir, 'hub-busy'), '--listen', `127.0.0.1:${busy}`, '--agent-listen', `127.0.0.1:${await freePort()}`]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`hub API: 127\\.0\\.0\\.1:${busy} is already in use`));
  const xds = fleet.agent('cluster1').xdsPort;
  r = await meshfed([
    'agent',
    '--cluster',
    'cluster1',
    '--hub',
    fleet.hubAgentAddr,
    '--xds-listen',
    `127.0.0.1:${xds}`,
    '--api-listen',
    `127.0.0.1:${await freePort()}`,
    '--data-dir',
    join(fleet.dir, 'agent-busy'),
    '--insecure-channel',
  ]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`agent xDS server: 127\\.0\\.0\\.1:${xds} is already in use`));
});

/** A TrafficPolicy of the tests below (it selects a service "echo" that need not exist). */
function trafficPolicy(name: string, namespace: string, labels: Record<string, string> = {}): string {
  return `apiVersion: meshfed.io/v1alpha1
kind: TrafficPolicy
metadata: {name: ${name}, namespace: ${namespace}, labels: ${JSON.stringify(labels)}}
spec: {destinations: [{name: echo}], routes: [{name: main, timeout: 2s}]}
`;
}

test('get -A, -l (filtered at the hub), -o jsonpath and -o wide; describe; delete -l and --all', async () => {
  const f = await file('tps.yaml', [trafficPolicy('tp-a', 'hab1', { team: 'red' }), trafficPolicy('tp-b', 'hab2', { team: 'blue' }), trafficPolicy('tp-c', 'hab2')].join('---\n'));
  let r = await meshfed(['apply', '-f', f]);
  assert.equal(r.code, 0, r.stderr);

  r = await meshfed(['get', 'tp', '-A']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^NAME\s+NAMESPACE\s/);
  assert.match(r.stdout, /tp-a\s+hab1/);
  assert.match(r.stdout, /tp-c\s+hab2/);
  r = await meshfed(['get', 'tp', '-A', '-n', 'hab1']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^error: -A\/--all-namespaces and -n\/--namespace together: pass one \(see meshfed get --help\)\n$/);

  const names = async (...args: string[]) => (await meshfed(['get', 'tp', ...args, '-o', 'name'])).stdout;
  assert.equal(await names('-A', '-l', 'team=red'), 'trafficpolicy/tp-a\n');
  assert.equal(await names('-A', '-l', '!team'), 'trafficpolicy/tp-c\n');
  assert.equal(await names('-n', 'hab2', '-l', 'team notin (red)'), 'trafficpolicy/tp-b\ntrafficpolicy/tp-c\n');
  r = await meshfed(['get', 'tp', '-A', '-l', 'team in (red,blue)', '-o', 'jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name}{"\\n"}{end}']);
  assert.equal(r.stdout, 'hab1/tp-a\nhab2/tp-b\n');
  // The hub filters (a large list is not shipped) and refuses a bad selector, on a list and a watch, naming it.
  for (const q of ['', 'watch=1&']) {
    const res = await fleet.hubFetch(`/api/v1alpha1/trafficpolicies?${q}labelSelector=${encodeURIComponent('team in (red')}`);
    assert.equal(res.status, 400, q);
    assert.match(((await res.json()) as { error: string }).error, /^label selector "team in \(red": "\(" without "\)"$/);
  }
  r = await meshfed(['get', 'tp', 'tp-a', '-n', 'hab1', '-o', 'jsonpath={.metadata.labels.team} {.spec.routes[0].timeout}']);
  assert.equal(r.stdout, 'red 2s');
  for (const [args, why] of [
    [['-l', 'team in (red'], /^error: -l: label selector "team in \(red": "\(" without "\)" \(see meshfed get --help\)\n$/],
    [['-o', 'jsonpath={.items[?(@.x)]}'], /^error: -o jsonpath: template "\{\.items\[\?\(@\.x\)\]\}": .*cannot read/],
  ] as const) {
    r = await meshfed(['get', 'tp', ...args]);
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.stderr, why);
  }
  r = await meshfed(['get', 'tp', '-A', '-o', 'wide']);
  assert.match(r.stdout, /^NAME\s+NAMESPACE\s.*AGE\s+VERSION\n/);

  r = await meshfed(['describe', 'tp', 'tp-a', '-n', 'hab1']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^Name:\s+tp-a\nNamespace:\s+hab1\nKind:\s+TrafficPolicy\nLabels:\s+team=red\n/);
  assert.match(r.stdout, /Spec:\n\s+destinations:/);
  assert.match(r.stdout, /Selects:\n\s+Services:\s+<none>\n/);
  // The writes to this object only (one apply also created tp-b and tp-c).
  assert.match(r.stdout, /Recent changes:\n\s+TIME\s+WHO\s+VERB\s+OUTCOME[^\n]*\n\s+\S+\s+\S+\s+create\s+allowed[^\n]*\n$/);
  r = await meshfed(['describe', 'cluster', 'cluster1']);
  assert.match(r.stdout, /Agent:\n\s+State:\s+Connected since /);

  // Deleting many: a namespaced kind needs -n or -A; a bad selector deletes nothing.
  r = await meshfed(['delete', 'tp', '--all']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /TrafficPolicy is namespaced: pass -n NAMESPACE, or -A for every namespace/);
  r = await meshfed(['delete', 'tp', '-A', '-l', 'team in (']);
  assert.equal(r.code, 2);
  assert.equal(await names('-A'), 'trafficpolicy/tp-a\ntrafficpolicy/tp-b\ntrafficpolicy/tp-c\n');
  r = await meshfed(['delete', 'tp', '-A', '-l', 'team=blue']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^TrafficPolicy \S*tp-b deleted\n$/);
  r = await meshfed(['delete', 'tp', '--all', '-n', 'hab2']);
  assert.match(r.stdout, /^TrafficPolicy \S*tp-c deleted\n$/);
  r = await meshfed(['delete', 'tp', '--all', '-n', 'hab2']);
  assert.equal(r.code, 0);
  assert.equal(r.stderr, 'no trafficpolicies found in namespace hab2\n');
  r = await meshfed(['delete', 'tp', '--all', '-A']);
  assert.match(r.stdout, /^TrafficPolicy \S*tp-a deleted\n$/);
});

test('describe globalservice: every cluster part with its endpoints and health', async () => {
  let r = await meshfed(['register', '--service', 'habsvc', '-n', 'hab', '--address', '127.0.0.1:6101']);
  assert.equal(r.code, 0, r.stderr);
  r = await eventually('the hub to see habsvc', async () => {
    const d = await meshfed(['describe', 'gsvc', 'habsvc', '-n', 'hab']);
    return d.code === 0 ? d : undefined;
  });
  assert.match(r.stdout, /^Name:\s+habsvc\nNamespace:\s+hab\nKind:\s+GlobalService\n/);
  assert.match(r.stdout, /cluster1: habsvc\S*, in the global service, 1\/1 endpoints healthy/);
  assert.match(r.stdout, /WORKLOAD\s+ADDRESS\s+ZONE\s+HEALTH\s+PORTS\n\s+\S+\s+127\.0\.0\.1\s+us-east1-a\s+HEALTHY/);
  assert.equal((await meshfed(['deregister', '--address', '127.0.0.1:6101'])).code, 0);
});

test('get -w: the list, then every change as it happens (a label selector at the hub); Ctrl-C exits 0', async () => {
  const apply = async (text: string) => {
    const r = await meshfed(['apply', '-f', await file('w.yaml', text)]);
    assert.equal(r.code, 0, r.stderr);
  };
  await apply(trafficPolicy('w1', 'habw', { watch: 'yes' }));
  const watcher = (args: string[]) => {
    const p = spawn(process.execPath, [meshfedBin(), 'get', 'tp', '-w', ...args], { env: cliEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    const w = { p, out: '', err: '' };
    p.stdout.on('data', (d: Buffer) => (w.out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (w.err += d.toString()));
    return w;
  };
  const table = watcher(['-n', 'habw']);
  const json = watcher(['-A', '-l', 'watch=yes', '-o', 'json']);
  const events = () =>
    json.out
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { type: string; object: { metadata: { name: string } } })
      .map((e) => `${e.type} ${e.object.metadata.name}`);
  await eventually('both watches to list', async () => (/^NAME\s+NAMESPACE[^\n]*\nw1\s+habw/.test(table.out) && events().length === 1 ? true : undefined));
  assert.deepEqual(events(), ['ADDED w1']);

  await apply(trafficPolicy('w2', 'habw', { watch: 'yes' }));
  await apply(trafficPolicy('w3', 'habw2', { watch: 'no' }));
  await apply(trafficPolicy('w1', 'habw', { watch: 'no' }));
  await eventually('the changes', async () => (events().length === 3 && /\nw2\s+habw/.test(table.out) ? true : undefined));
  // w3 does not match; w1 stopped matching: DELETED for that watcher, MODIFIED (a row) for the other.
  assert.deepEqual(events(), ['ADDED w1', 'ADDED w2', 'DELETED w1']);
  assert.equal(table.out.match(/^w1\s/gm)?.length, 2, table.out);
  assert.doesNotMatch(table.out, /w3/);

  for (const w of [table, json]) {
    const code = new Promise((res) => w.p.on('exit', (c) => res(c)));
    w.p.kill('SIGINT');
    assert.equal(await code, 0, w.err);
  }
  assert.equal((await meshfed(['delete', 'tp', '-A', '-l', 'watch'])).code, 0);
});
