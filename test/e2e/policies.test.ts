// End to end: TrafficPolicy and FailoverPolicy with real hub/agent processes and
// real @grpc/grpc-js-xds clients and servers across three clusters. Measured
// numbers are printed as TAP comments (# ...).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { API_VERSION, type ApiObject } from '../../src/api/index.js';
import { DEMO_CLUSTERS, HELLOWORLD_PORT, LocalFleet, clusterObject, type ServerHandle } from '../../src/demo/fleet.js';
import { TickLog, type Tick } from '../helpers/tick-log.js';

let fleet: LocalFleet;
const servers = new Map<string, ServerHandle>();
const NS = 'sample';

before(async () => {
  fleet = await LocalFleet.create();
  await fleet.startHub();
  await fleet.apply([
    { apiVersion: API_VERSION, kind: 'Mesh', metadata: { name: 'default' }, spec: { mtls: { mode: 'DISABLE' } } } /* plaintext: mTLS has its own tests (mtls.test.ts) */,
    ...DEMO_CLUSTERS.map(clusterObject),
  ]);
  await Promise.all(DEMO_CLUSTERS.map((c) => fleet.startAgent(c)));
  const started = await Promise.all(
    (
      [
        ['cluster1', 'hw-c1-v1', 'v1'],
        ['cluster1', 'hw-c1-v2', 'v2'],
        ['cluster2', 'hw-c2-v3', 'v3'],
        ['cluster3', 'hw-c3-v3', 'v3'],
      ] as const
    ).map(([cluster, name, version]) => fleet.startServer(cluster, { name, version })),
  );
  for (const s of started) servers.set(s.name, s);
});

after(async () => {
  await fleet?.close();
});

function policy(kind: 'TrafficPolicy' | 'FailoverPolicy', name: string, spec: Record<string, unknown>): ApiObject {
  return { apiVersion: API_VERSION, kind, metadata: { name, namespace: NS }, spec };
}

async function remove(plural: string, name: string): Promise<void> {
  const r = await fleet.hubFetch(`/api/v1alpha1/${plural}/${name}?namespace=${NS}`, { method: 'DELETE' });
  assert.ok(r.status === 200 || r.status === 404, await r.text());
}

async function client(cluster: string, name: string, o: { rate?: number; headers?: Record<string, string>; tickMs?: number } = {}): Promise<TickLog> {
  const bootstrap = await fleet.bootstrap(cluster, NS, name, false);
  return new TickLog(
    fleet.startClient(cluster, bootstrap, { target: 'xds:///helloworld.sample', rate: o.rate ?? 100, name, ...(o.headers ? { headers: o.headers } : {}), ...(o.tickMs ? { tickMs: o.tickMs } : {}) }),
  );
}

async function register(name: string): Promise<void> {
  const s = servers.get(name)!;
  const r = await fleet.register(s.cluster, { name: s.name, namespace: NS, service: 'helloworld', address: s.address, servicePort: HELLOWORLD_PORT, labels: { version: name.split('-')[2]! } });
  assert.ok(r.status < 300, JSON.stringify(r.body));
}

const only = (prefixes: string[]) => (t: Tick) => t.ok > 0 && Object.keys(t.byBackend).every((k) => prefixes.some((p) => k.startsWith(p)));
const pct = (n: number, total: number) => Math.round((1000 * n) / total) / 10;

test('weighted split across clusters and subsets: 75% v3 in cluster2, 15% v1 and 10% v2 in cluster1', async () => {
  // 150 calls/s: a saturated backend would finish its calls late and be under-counted in the window.
  const log = await client('cluster3', 'split-client', { rate: 150 });
  await log.waitFor(0, 1, (t) => (t.byBackend['cluster3/v3'] ?? 0) > 0);
  await fleet.apply([
    policy('TrafficPolicy', 'helloworld-split', {
      destinations: [{ name: 'helloworld' }],
      routes: [
        {
          split: [
            { cluster: 'cluster2', subset: { version: 'v3' }, weight: 75 },
            { cluster: 'cluster1', subset: { version: 'v1' }, weight: 15 },
            { cluster: 'cluster1', subset: { version: 'v2' }, weight: 10 },
          ],
        },
      ],
    }),
  ]);
  await log.waitFor(log.mark(), 2, only(['cluster1/', 'cluster2/']));
  const sum = await log.calls(log.mark(), 2000);
  assert.equal(sum.failed, 0, JSON.stringify(sum.errors));
  const total = sum.ok;
  const want = { 'cluster2/v3': 75, 'cluster1/v1': 15, 'cluster1/v2': 10 };
  for (const [k, w] of Object.entries(want)) {
    const got = pct(sum.byBackend[k] ?? 0, total);
    assert.ok(Math.abs(got - w) <= 3, `${k}: ${got}% of ${total} calls, want ${w}% +-3`);
  }
  process.stdout.write(
    `# split over ${total} calls: ${Object.keys(want)
      .map((k) => `${k} ${pct(sum.byBackend[k] ?? 0, total)}%`)
      .join(', ')} (want 75/15/10)\n`,
  );

  // Status lists what the policy applies to.
  const st = (await (await fleet.hubFetch(`/api/v1alpha1/trafficpolicies/helloworld-split?namespace=${NS}`)).json()) as {
    status: { services: string[]; clusters: string[]; problems: unknown[] };
  };
  assert.deepEqual(st.status.services, ['helloworld.sample']);
  assert.deepEqual(st.status.clusters, ['cluster1', 'cluster2', 'cluster3']);
  assert.deepEqual(st.status.problems, []);
  await fleet.procs.stop(log.child);
});

test('a header-matched route sends only matching calls to its target', async () => {
  await fleet.apply([
    policy('TrafficPolicy', 'helloworld-split', {
      destinations: [{ name: 'helloworld' }],
      routes: [
        { name: 'canary', match: { headers: [{ name: 'x-canary', exact: 'yes' }] }, split: [{ cluster: 'cluster3', weight: 100 }] },
        { name: 'rest', split: [{ cluster: 'cluster1', weight: 100 }] },
      ],
    }),
  ]);
  const canary = await client('cluster2', 'canary-client', { headers: { 'x-canary': 'yes' } });
  const plain = await client('cluster2', 'plain-client');
  await canary.waitFor(0, 1, (t) => t.ok > 0);
  await plain.waitFor(0, 1, (t) => t.ok > 0);
  const [a, b] = await Promise.all([canary.calls(canary.mark(), 200), plain.calls(plain.mark(), 200)]);
  assert.deepEqual(Object.keys(a.byBackend), ['cluster3/v3']);
  assert.deepEqual(Object.keys(b.byBackend).sort(), ['cluster1/v1', 'cluster1/v2']);
  assert.equal(a.failed + b.failed, 0);
  process.stdout.write(`# header route: x-canary=yes -> ${JSON.stringify(a.byBackend)}; no header -> ${JSON.stringify(b.byBackend)}\n`);
  await fleet.procs.stop(canary.child);
  await fleet.procs.stop(plain.child);
});

test('fault injection: an injected abort rate is observed', async () => {
  await fleet.apply([policy('TrafficPolicy', 'helloworld-split', { destinations: [{ name: 'helloworld' }], routes: [{ fault: { abort: { grpcStatus: 'UNAVAILABLE', percent: 20 } } }] })]);
  const log = await client('cluster1', 'fault-client', { rate: 300 });
  await log.waitFor(0, 1, (t) => t.failed > 0);
  const sum = await log.calls(log.mark(), 2000);
  const rate = pct(sum.failed, sum.ok + sum.failed);
  assert.ok(Math.abs(rate - 20) <= 3, `abort rate ${rate}% of ${sum.ok + sum.failed}, want 20 +-3: ${JSON.stringify(sum.errors)}`);
  process.stdout.write(`# fault abort 20%: observed ${rate}% of ${sum.ok + sum.failed} calls failed\n`);
  await fleet.procs.stop(log.child);
});

test('a route timeout cuts injected delays: delayed calls end with DEADLINE_EXCEEDED', async () => {
  await fleet.apply([policy('TrafficPolicy', 'helloworld-split', { destinations: [{ name: 'helloworld' }], routes: [{ timeout: '600ms', fault: { delay: { fixed: '2s', percent: 30 } } }] })]);
  const log = await client('cluster1', 'timeout-client', { rate: 200 });
  try {
    await log.waitFor(0, 1, (t) => t.failed > 0);
    const sum = await log.calls(log.mark(), 1000);
    const rate = pct(sum.failed, sum.ok + sum.failed);
    assert.ok(Math.abs(rate - 30) <= 5, `timed out ${rate}% of ${sum.ok + sum.failed}, want 30 +-5: ${JSON.stringify(sum.errors).slice(0, 500)}`);
    assert.ok(
      Object.keys(sum.errors).every((e) => e.startsWith('DEADLINE_EXCEEDED')),
      JSON.stringify(sum.errors).slice(0, 500),
    );
    process.stdout.write(`# delay 2 s on 30% with a 600 ms route timeout (margin for a loaded machine): ${rate}% of ${sum.ok + sum.failed} calls ended DEADLINE_EXCEEDED\n`);
  } finally {
    await fleet.procs.stop(log.child);
  }
});

test('retries hide a failing endpoint', async () => {
  await remove('trafficpolicies', 'helloworld-split');
  const bad = await fleet.startServer('cluster2', { name: 'hw-c2-bad', version: 'bad', failRate: 1 });
  const log = await client('cluster2', 'retry-client', { rate: 200 });
  try {
    await log.waitFor(0, 2, (t) => t.failed > 0);
    const without = await log.calls(log.mark(), 400);
    assert.ok(without.failed > 0);
    await fleet.apply([
      policy('TrafficPolicy', 'helloworld-retries', { destinations: [{ name: 'helloworld' }], routes: [{ retries: { attempts: 5, on: ['unavailable'], backoff: { baseInterval: '5ms' } } }] }),
    ]);
    await log.waitFor(log.mark(), 2, (t) => t.ok > 0 && t.failed === 0);
    const withRetries = await log.calls(log.mark(), 1000);
    // Round robin interleaves concurrent calls, so a retry can land on the bad endpoint again: (1/5)^5 per call.
    const failedWith = pct(withRetries.failed, withRetries.ok + withRetries.failed);
    assert.ok(failedWith <= 0.5, `${failedWith}% failed with retries: ${JSON.stringify(withRetries.errors)}`);
    process.stdout.write(
      `# failing endpoint (1 of 5): without retries ${pct(without.failed, without.ok + without.failed)}% failed; with 5 attempts ${withRetries.failed} of ${withRetries.ok + withRetries.failed} failed\n`,
    );
  } finally {
    await fleet.procs.stop(log.child);
    await fleet.deregister('cluster2', { namespace: NS, name: 'hw-c2-bad' });
    await fleet.procs.stop(bad.child);
    await remove('trafficpolicies', 'helloworld-retries');
  }
});

test('outlier detection ejects an endpoint that fails every call', async () => {
  const bad = await fleet.startServer('cluster2', { name: 'hw-c2-od', version: 'bad', failRate: 1 });
  await fleet.apply([
    policy('TrafficPolicy', 'helloworld-outliers', {
      destinations: [{ name: 'helloworld' }],
      outlierDetection: { interval: '1s', baseEjectionTime: '30s', maxEjectionPercent: 50, failurePercentage: { threshold: 50, minimumHosts: 2, requestVolume: 10 } },
    }),
  ]);
  const log = await client('cluster2', 'od-client', { rate: 200, tickMs: 250 });
  try {
    await log.waitFor(0, 1, (t) => t.failed > 0);
    const t0 = Date.now();
    // Ejected within a few detection intervals; then no call reaches it.
    const ms = await log.waitFor(log.mark(), 8, (t) => t.ok > 0 && t.failed === 0, 15_000, t0);
    const after = await log.calls(log.mark(), 1000);
    assert.equal(after.failed, 0, JSON.stringify(after.errors));
    assert.equal(after.byBackend['cluster2/bad'] ?? 0, 0);
    process.stdout.write(`# outlier detection: failing endpoint ejected ${ms} ms after its first failures were seen (1 s interval); then ${after.ok} calls, 0 failed\n`);
  } finally {
    await fleet.procs.stop(log.child);
    await fleet.deregister('cluster2', { namespace: NS, name: 'hw-c2-od' });
    await fleet.procs.stop(bad.child);
    await remove('trafficpolicies', 'helloworld-outliers');
  }
});

test('ring hash on a header keeps each user on one backend', async () => {
  await fleet.apply([policy('TrafficPolicy', 'helloworld-sticky', { destinations: [{ name: 'helloworld' }], loadBalancing: { policy: 'RING_HASH', hashHeader: 'x-user' } })]);
  const users = ['alice', 'bob', 'carol', 'dave', 'erin'];
  // The five users' clients start and are measured side by side (one after another took 20 s).
  const logs = await Promise.all(users.map((u) => client('cluster1', `sticky-${u}`, { rate: 30, headers: { 'x-user': u } })));
  try {
    const chosen = await Promise.all(
      logs.map(async (log, i) => {
        await log.waitFor(0, 2, (t) => t.ok > 0, 30_000);
        const sum = await log.calls(log.mark(), 100);
        assert.equal(sum.failed, 0, JSON.stringify(sum.errors));
        assert.equal(Object.keys(sum.byBackend).length, 1, `${users[i]} spread over ${JSON.stringify(sum.byBackend)}`);
        return Object.keys(sum.byBackend)[0]!;
      }),
    );
    // Different users hash to different backends (5 users over 4 backends: not all on one).
    assert.ok(new Set(chosen).size > 1, `every user on ${chosen[0]}`);
    process.stdout.write(`# ring hash on x-user: ${users.map((u, i) => `${u}->${chosen[i]}`).join(', ')}\n`);
  } finally {
    for (const log of logs) await fleet.procs.stop(log.child);
    await remove('trafficpolicies', 'helloworld-sticky');
  }
});

test('affinity local keeps traffic local; fails over zone/region first, then other regions, and back', async () => {
  await fleet.apply([policy('FailoverPolicy', 'helloworld-failover', { destinations: [{ name: 'helloworld' }], affinity: 'local' })]);
  const log = await client('cluster1', 'local-client', { rate: 200, tickMs: 100 });
  await log.waitFor(0, 10, only(['cluster1/']));
  const steady = await log.calls(log.mark(), 1000);
  assert.deepEqual(Object.keys(steady.byBackend).sort(), ['cluster1/v1', 'cluster1/v2']);

  // Every local endpoint deregistered: same region (cluster2) before the other region (cluster3).
  let m = log.mark();
  let t0 = Date.now();
  await fleet.deregister('cluster1', { namespace: NS, name: 'hw-c1-v1' });
  await fleet.deregister('cluster1', { namespace: NS, name: 'hw-c1-v2' });
  const outDereg = await log.waitFor(m, 3, only(['cluster2/']), 15_000, t0);
  m = log.mark();
  t0 = Date.now();
  await register('hw-c1-v1');
  await register('hw-c1-v2');
  const backDereg = await log.waitFor(m, 3, only(['cluster1/']), 15_000, t0);

  // Every local endpoint killed (processes stopped, still registered).
  m = log.mark();
  t0 = Date.now();
  await fleet.procs.stop(servers.get('hw-c1-v1')!.child);
  await fleet.procs.stop(servers.get('hw-c1-v2')!.child);
  const outKill = await log.waitFor(m, 3, only(['cluster2/']), 15_000, t0);
  const killed = log.since(m);
  // Restarted on new ports and registered again.
  await fleet.deregister('cluster1', { namespace: NS, name: 'hw-c1-v1' });
  await fleet.deregister('cluster1', { namespace: NS, name: 'hw-c1-v2' });
  m = log.mark();
  t0 = Date.now();
  servers.set('hw-c1-v1', await fleet.startServer('cluster1', { name: 'hw-c1-v1', version: 'v1' }));
  servers.set('hw-c1-v2', await fleet.startServer('cluster1', { name: 'hw-c1-v2', version: 'v2' }));
  const backKill = await log.waitFor(m, 3, only(['cluster1/']), 15_000, t0);

  // Local and same-region gone: the other region.
  m = log.mark();
  for (const [c, n] of [
    ['cluster1', 'hw-c1-v1'],
    ['cluster1', 'hw-c1-v2'],
    ['cluster2', 'hw-c2-v3'],
  ] as const)
    await fleet.deregister(c, { namespace: NS, name: n });
  const outRegion = await log.waitFor(m, 3, only(['cluster3/']));
  for (const n of ['hw-c1-v1', 'hw-c1-v2', 'hw-c2-v3']) await register(n);
  await log.waitFor(log.mark(), 3, only(['cluster1/']));
  process.stdout.write(
    `# affinity local (100 ms ticks): deregistered -> cluster2 in ${outDereg} ms, back in ${backDereg} ms; ` +
      `killed -> cluster2 in ${outKill} ms (${killed.failed} failed calls of ${killed.ok + killed.failed}), back after restart+register in ${backKill} ms; ` +
      `cluster1+cluster2 gone -> cluster3 in ${outRegion} ms\n`,
  );
  await fleet.procs.stop(log.child);
});

test('affinity remote drains the local cluster for its clients', async () => {
  await fleet.apply([policy('FailoverPolicy', 'helloworld-failover', { destinations: [{ name: 'helloworld' }], affinity: 'remote' })]);
  const log = await client('cluster1', 'remote-client', { rate: 200 });
  await log.waitFor(0, 2, only(['cluster2/', 'cluster3/']));
  const sum = await log.calls(log.mark(), 600);
  assert.equal(sum.byBackend['cluster1/v1'] ?? 0, 0);
  assert.equal(sum.byBackend['cluster1/v2'] ?? 0, 0);
  assert.equal(sum.failed, 0);
  process.stdout.write(`# affinity remote from cluster1: ${JSON.stringify(sum.byBackend)}\n`);
  await fleet.procs.stop(log.child);
  await remove('failoverpolicies', 'helloworld-failover');
});

test('meshfed plan (POST /plan) shows per-cluster diffs and the expected split, and writes nothing', async () => {
  const before = (await (await fleet.hubFetch(`/healthz`)).json()) as { revision: number };
  const r = await fleet.hubFetch(`/api/v1alpha1/plan`, {
    method: 'POST',
    body: JSON.stringify([
      policy('TrafficPolicy', 'canary', {
        destinations: [{ name: 'helloworld' }],
        routes: [
          {
            split: [
              { cluster: 'cluster2', weight: 99 },
              { cluster: 'cluster3', weight: 1 },
            ],
          },
        ],
      }),
    ]),
  });
  assert.equal(r.status, 200);
  const p = (await r.json()) as { clusters: { cluster: string; changes: { name: string }[] }[]; services: { split: Record<string, { after: { shares: Record<string, number> }[] }> }[] };
  assert.deepEqual(
    p.clusters.map((c) => c.cluster),
    ['cluster1', 'cluster2', 'cluster3'],
  );
  assert.ok(p.clusters[0]!.changes.some((c) => c.name === 'outbound|50051|cluster=cluster3|helloworld.sample'));
  assert.deepEqual(p.services[0]!.split.cluster1!.after[0]!.shares, { 'cluster2/v3': 99, 'cluster3/v3': 1 });
  const after = (await (await fleet.hubFetch(`/healthz`)).json()) as { revision: number };
  assert.equal(after.revision, before.revision);
});
