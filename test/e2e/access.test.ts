// End to end: AccessPolicies enforced by real grpc-js-xds servers (RBAC, gRFC
// A41) across three clusters over mTLS (STRICT), with real grpc-js-xds clients
// whose identities come from `meshfed identity run`. In every case the test also
// asks `explain` (API or CLI) and checks that its verdict is what the real calls
// did. Measured numbers are printed as TAP comments (# ...).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { API_VERSION, type ApiObject } from '../../src/api/index.js';
import { DEMO_CLUSTERS, LocalFleet, clusterObject, type ServerHandle } from '../../src/demo/fleet.js';
import { meshfedBin } from '../../src/demo/processes.js';
import type { ExplainResult } from '../../src/analysis/explain.js';
import type { ProxySummary } from '../../src/agent/proxy-status.js';
import { TickLog, type Tick } from '../helpers/tick-log.js';

const run = promisify(execFile);
const TD = 'meshfed.local';
const NS = 'sample';
let fleet: LocalFleet;
let rb2: ServerHandle;
let xw1Dir = '';

type Verdict = 'ALLOW' | 'DENY';
interface Caller {
  name: string;
  cluster: string;
  sa: string;
  method: 'SayHello' | 'SayGoodbye';
  log: TickLog;
}
const callers = new Map<string, Caller>();

function mesh(access?: 'ALLOW' | 'DENY'): ApiObject {
  return { apiVersion: API_VERSION, kind: 'Mesh', metadata: { name: 'default' }, spec: { trustDomain: TD, mtls: { mode: 'STRICT' }, ...(access ? { access: { default: access } } : {}) } };
}

function policy(name: string, spec: Record<string, unknown>): ApiObject {
  return { apiVersion: API_VERSION, kind: 'AccessPolicy', metadata: { name, namespace: NS }, spec };
}

async function remove(name: string): Promise<void> {
  const r = await fleet.hubFetch(`/api/v1alpha1/accesspolicies/${name}?namespace=${NS}`, { method: 'DELETE' });
  assert.ok(r.status === 200 || r.status === 404, await r.text());
}

async function startCaller(name: string, cluster: string, sa: string, method: Caller['method'], certDir: string, tickMs = 250, rate = 40): Promise<Caller> {
  const bootstrap = await fleet.bootstrap(cluster, NS, name, false, certDir);
  // Pinned to cluster2's rebel-base (its per-cluster name): one destination workload, one verdict.
  const child = fleet.startClient(cluster, bootstrap, { target: 'xds:///rebel-base.sample.cluster2', rate, name, tickMs, method, deadlineMs: 2000 });
  const c: Caller = { name, cluster, sa, method, log: new TickLog(child) };
  callers.set(name, c);
  return c;
}

before(async () => {
  fleet = await LocalFleet.create();
  await fleet.startHub();
  await fleet.apply([mesh(), ...DEMO_CLUSTERS.map(clusterObject)]);
  await Promise.all(DEMO_CLUSTERS.map((c) => fleet.startAgent(c)));
  // max_connection_age bounds how long a connection can keep an old listener's RBAC (docs/access.md, library limitation).
  const rebelBases = await Promise.all(
    ['cluster2', 'cluster3'].map((c) =>
      fleet.startServer(c, { name: `rebel-base-${c.replace('cluster', 'c')}`, version: 'v1', service: 'rebel-base', serviceAccount: 'rebel-base', identity: true, maxConnectionAgeMs: 10_000 }),
    ),
  );
  rb2 = rebelBases[0]!;
  // x-wing in cluster1 and in cluster2: same namespace and service account, two identities.
  const xw1 = await fleet.startIdentity('cluster1', NS, 'x-wing', 'x-wing-c1');
  xw1Dir = xw1.dir;
  const xw2 = await fleet.startIdentity('cluster2', NS, 'x-wing', 'x-wing-c2');
  await startCaller('xw1-hello', 'cluster1', 'x-wing', 'SayHello', xw1.dir);
  await startCaller('xw1-bye', 'cluster1', 'x-wing', 'SayGoodbye', xw1.dir);
  await startCaller('xw2-hello', 'cluster2', 'x-wing', 'SayHello', xw2.dir);
});

after(async () => {
  await fleet?.close();
});

/** What a tick says the calls did: every call ok, every call PERMISSION_DENIED, or something else. */
function observed(t: Tick): Verdict | 'OTHER' {
  if (t.ok > 0 && t.failed === 0) return 'ALLOW';
  if (t.ok === 0 && t.failed > 0 && Object.keys(t.errors).every((e) => e.startsWith('PERMISSION_DENIED'))) return 'DENY';
  return 'OTHER';
}

async function explainApi(c: Caller, withObjects?: ApiObject[]): Promise<ExplainResult> {
  const r = await fleet.hubFetch(`/api/v1alpha1/explain`, {
    method: 'POST',
    body: JSON.stringify({
      from: { cluster: c.cluster, namespace: NS, workload: c.name, serviceAccount: c.sa },
      to: 'rebel-base.sample.cluster2',
      method: `helloworld.Greeter/${c.method}`,
      ...(withObjects ? { with: withObjects } : {}),
    }),
  });
  assert.equal(r.status, 200, await r.clone().text());
  return (await r.json()) as ExplainResult;
}

/**
 * Waits until every caller's calls settle on the expected verdict (3 ticks in a
 * row), then checks that the real calls over the next ticks and explain agree.
 * Returns ms from `t0` until each caller settled.
 */
async function expectVerdicts(want: Record<string, Verdict>, t0: number, marks = new Map([...callers].map(([n, c]) => [n, c.log.mark()]))): Promise<Record<string, number>> {
  const took: Record<string, number> = {};
  for (const [name, v] of Object.entries(want)) {
    const c = callers.get(name)!;
    try {
      took[name] = await c.log.waitFor(marks.get(name)!, 3, (t) => observed(t) === v, 20_000, t0);
    } catch (err) {
      // What the destination's agent last sent its server, for the failure message.
      const px = (await (await fleet.agentFetch('cluster2', `/v1/proxies`)).json()) as { items: ProxySummary[] };
      throw new Error(`${name}: want ${v}: ${(err as Error).message}; cluster2 proxies: ${JSON.stringify(px.items.map((p) => [p.nodeId, p.types.LDS]))}`);
    }
  }
  for (const [name, v] of Object.entries(want)) {
    const c = callers.get(name)!;
    const window = await c.log.ticksAfter(c.log.mark(), 2);
    const real = observed(window);
    const ex = await explainApi(c);
    assert.equal(real, v, `${name}: real calls ${JSON.stringify(window)}`);
    assert.equal(ex.verdict, real, `${name}: explain says ${ex.verdict} (${ex.endpoints.map((e) => e.access.reason).join('; ')}), the calls did ${real}`);
    assert.deepEqual(
      ex.endpoints.map((e) => `${e.cluster}/${e.workload}`),
      ['cluster2/rebel-base-c2'],
    );
  }
  return took;
}

test('no AccessPolicy and Mesh default ALLOW: every call is allowed, explain says the default decided', async () => {
  await expectVerdicts({ 'xw1-hello': 'ALLOW', 'xw1-bye': 'ALLOW', 'xw2-hello': 'ALLOW' }, Date.now());
  const ex = await explainApi(callers.get('xw1-hello')!);
  assert.equal(ex.endpoints[0]!.access.decidedBy, 'default');
  assert.equal(ex.endpoints[0]!.callerIdentity, `spiffe://${TD}/cluster/cluster1/ns/sample/sa/x-wing`);
});

test('x-wing in cluster1 may call rebel-base; x-wing in cluster2 (same namespace and service account) may not', async () => {
  const t0 = Date.now();
  const xw1 = callers.get('xw1-hello')!;
  const m = xw1.log.mark();
  await fleet.apply([policy('rebel-base-from-cluster1', { action: 'ALLOW', destinations: [{ name: 'rebel-base' }], sources: [{ cluster: 'cluster1', namespace: NS, serviceAccount: 'x-wing' }] })]);
  const took = await expectVerdicts({ 'xw1-hello': 'ALLOW', 'xw1-bye': 'ALLOW', 'xw2-hello': 'DENY' }, t0);
  // The server switched listeners under x-wing@cluster1's traffic: it was never denied meanwhile
  // (other failures would be load on this 2-core machine; printed below, 0 when it is quiet).
  const during = xw1.log.since(m);
  const wronglyDenied = Object.entries(during.errors).filter(([e]) => e.startsWith('PERMISSION_DENIED'));
  assert.deepEqual(wronglyDenied, [], 'x-wing@cluster1 was denied while the policy was applied');
  const ex = await explainApi(callers.get('xw2-hello')!);
  assert.equal(ex.endpoints[0]!.access.decidedBy, 'AccessPolicy sample/rebel-base-from-cluster1');
  assert.match(ex.endpoints[0]!.access.reason, /none allows spiffe:\/\/meshfed\.local\/cluster\/cluster2\/ns\/sample\/sa\/x-wing/);
  const allow = await explainApi(callers.get('xw1-hello')!);
  assert.match(allow.endpoints[0]!.access.reason, /sources\[0\]/);

  // Status: what the policy resolved to, and the unregistered caller's service account named as a problem.
  const st = (await (await fleet.hubFetch(`/api/v1alpha1/accesspolicies/rebel-base-from-cluster1?namespace=${NS}`)).json()) as {
    status: { destinations: string[]; sources: string[]; problems: { path: string }[] };
  };
  assert.deepEqual(st.status.destinations, ['cluster2/sample/rebel-base-c2 (rebel-base)', 'cluster3/sample/rebel-base-c3 (rebel-base)']);
  assert.deepEqual(st.status.sources, [`spiffe://${TD}/cluster/cluster1/ns/sample/sa/x-wing`]);
  assert.deepEqual(
    st.status.problems.map((p) => p.path),
    ['/spec/sources/0/serviceAccount'],
  );
  process.stdout.write(
    `# ALLOW x-wing@cluster1 applied to running servers: x-wing@cluster2 denied after ${took['xw2-hello']} ms; x-wing@cluster1: ${during.ok} calls, ${during.failed} failed meanwhile\n`,
  );
});

test('method-level rules: SayHello allowed, SayGoodbye denied for the same caller', async () => {
  const t0 = Date.now();
  await fleet.apply([
    policy('rebel-base-from-cluster1', {
      action: 'ALLOW',
      destinations: [{ name: 'rebel-base', methods: ['helloworld.Greeter/SayHello'] }],
      sources: [{ cluster: 'cluster1', namespace: NS, serviceAccount: 'x-wing' }],
    }),
  ]);
  const took = await expectVerdicts({ 'xw1-hello': 'ALLOW', 'xw1-bye': 'DENY', 'xw2-hello': 'DENY' }, t0);
  process.stdout.write(`# method rule: SayGoodbye denied after ${took['xw1-bye']} ms, SayHello still allowed\n`);
});

test('DENY wins over ALLOW', async () => {
  const t0 = Date.now();
  await fleet.apply([
    policy('rebel-base-from-cluster1', { action: 'ALLOW', destinations: [{ name: 'rebel-base' }], sources: [{ namespace: NS }] }),
    policy('no-x-wing-from-cluster1', { action: 'DENY', destinations: [{ name: 'rebel-base' }], sources: [{ cluster: 'cluster1', serviceAccount: 'x-wing' }] }),
  ]);
  await expectVerdicts({ 'xw1-hello': 'DENY', 'xw1-bye': 'DENY', 'xw2-hello': 'ALLOW' }, t0);
  const ex = await explainApi(callers.get('xw1-hello')!);
  assert.equal(ex.endpoints[0]!.access.decidedBy, 'AccessPolicy sample/no-x-wing-from-cluster1');
  await remove('no-x-wing-from-cluster1');
  await remove('rebel-base-from-cluster1');
});

test('Mesh default DENY denies every call; an ALLOW policy then lets exactly its sources in', async () => {
  let t0 = Date.now();
  await fleet.apply([mesh('DENY')]);
  const took = await expectVerdicts({ 'xw1-hello': 'DENY', 'xw1-bye': 'DENY', 'xw2-hello': 'DENY' }, t0);
  const ex = await explainApi(callers.get('xw2-hello')!);
  assert.equal(ex.endpoints[0]!.access.decidedBy, 'default');
  t0 = Date.now();
  await fleet.apply([policy('cluster2-x-wing', { action: 'ALLOW', destinations: [{ name: 'rebel-base', cluster: 'cluster2' }], sources: [{ cluster: 'cluster2' }] })]);
  await expectVerdicts({ 'xw1-hello': 'DENY', 'xw1-bye': 'DENY', 'xw2-hello': 'ALLOW' }, t0);
  await remove('cluster2-x-wing');
  await fleet.apply([mesh('ALLOW')]);
  await expectVerdicts({ 'xw1-hello': 'ALLOW', 'xw1-bye': 'ALLOW', 'xw2-hello': 'ALLOW' }, Date.now());
  process.stdout.write(`# Mesh access.default DENY applied in ${Math.max(...Object.values(took))} ms\n`);
});

test('a DENY policy applied and removed under live traffic takes effect without restarts; explain --with predicts it (CLI)', async () => {
  // Its own caller with 50 ms ticks (100 calls/s): the times below are to the first tick of the new state.
  const c = await startCaller('xw1-live', 'cluster1', 'x-wing', 'SayHello', xw1Dir, 50, 100);
  callers.delete('xw1-live');
  await c.log.waitFor(0, 3, (t) => observed(t) === 'ALLOW');
  const deny = policy('deny-x-wing', { action: 'DENY', destinations: [{ name: 'rebel-base' }], sources: [{ cluster: 'cluster1', namespace: NS, serviceAccount: 'x-wing' }] });
  const pid = rb2.child.proc.pid;
  // Dry run first: explain with the policy as if applied says DENY, the real calls are still allowed, nothing is written.
  const rev = ((await (await fleet.hubFetch(`/healthz`)).json()) as { revision: number }).revision;
  const dry = await explainApi(c, [deny]);
  assert.equal(dry.verdict, 'DENY');
  assert.deepEqual(dry.applied, ['AccessPolicy sample/deny-x-wing']);
  assert.equal(observed(await c.log.ticksAfter(c.log.mark(), 2)), 'ALLOW');
  assert.equal(((await (await fleet.hubFetch(`/healthz`)).json()) as { revision: number }).revision, rev);

  const rounds: { deny: number; allow: number }[] = [];
  for (let i = 0; i < 3; i++) {
    let t0 = Date.now();
    await fleet.apply([deny]);
    const d = await c.log.waitFor(c.log.mark(), 3, (t) => observed(t) === 'DENY', 20_000, t0);
    t0 = Date.now();
    await remove('deny-x-wing');
    const a = await c.log.waitFor(c.log.mark(), 3, (t) => observed(t) === 'ALLOW', 20_000, t0);
    rounds.push({ deny: d, allow: a });
  }
  // Same server process all along: applied to the running server, not by a restart.
  assert.equal(rb2.child.proc.pid, pid);
  assert.equal(rb2.child.proc.exitCode, null);

  // The CLI, human output, with the dry run.
  const { writeFile } = await import('node:fs/promises');
  const file = `${fleet.dir}/deny.yaml`;
  await writeFile(file, JSON.stringify(deny));
  const { stdout } = await run(
    process.execPath,
    [
      meshfedBin(),
      'explain',
      '--from',
      'cluster1/sample/xw1-live',
      '--service-account',
      'x-wing',
      '--to',
      'rebel-base.sample.cluster2',
      '--method',
      'helloworld.Greeter/SayHello',
      '--with',
      '-f',
      file,
      '--hub',
      fleet.hubUrl,
    ],
    { env: { ...process.env, ...fleet.cliEnv() } },
  );
  assert.match(stdout, /cluster2\s+rebel-base-c2\s+\S+\s+0\s+100%\s+HEALTHY\s+STRICT\s+DENY\s+AccessPolicy sample\/deny-x-wing/);
  assert.match(stdout, /verdict: DENIED/);
  const ms = (k: 'deny' | 'allow') => rounds.map((r) => r[k]).join(', ');
  process.stdout.write(`# live DENY applied (100 calls/s, 50 ms ticks): calls denied after ${ms('deny')} ms; removed: allowed again after ${ms('allow')} ms; no restart\n`);
  await fleet.procs.stop(c.log.child);
});

test('a gRPC server without GRPC_XDS_EXPERIMENTAL_RBAC NACKs the listener; proxy-status says why and what to do', async () => {
  await fleet.startServer('cluster3', { name: 'norbac', version: 'v1', service: 'norbac', identity: true, rbac: false });
  await fleet.apply([policy('norbac', { action: 'ALLOW', destinations: [{ name: 'norbac' }] })]);
  const deadline = Date.now() + 15_000;
  let hint: string | undefined;
  while (!hint && Date.now() < deadline) {
    const r = (await (await fleet.agentFetch('cluster3', `/v1/proxies`)).json()) as { items: ProxySummary[] };
    hint = r.items.find((p) => p.nodeId === 'cluster3~sample~norbac')?.types.LDS?.hint;
    if (!hint) await new Promise((res) => setTimeout(res, 200));
  }
  assert.match(hint ?? '', /GRPC_XDS_EXPERIMENTAL_RBAC=true/);
  await remove('norbac');
});
