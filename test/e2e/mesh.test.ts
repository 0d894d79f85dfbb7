// End to end: real hub and agent processes, real @grpc/grpc-js-xds servers and
// clients (each its own process, since a process reads one xDS bootstrap).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { API_VERSION } from '../../src/api/index.js';
import { DEMO_CLUSTERS, HELLOWORLD_PORT, LocalFleet, clusterObject, type ServerHandle } from '../../src/demo/fleet.js';
import { TickLog } from '../helpers/tick-log.js';

let fleet: LocalFleet;
const servers: ServerHandle[] = [];

before(async () => {
  fleet = await LocalFleet.create();
  await fleet.startHub();
  await fleet.apply([
    { apiVersion: API_VERSION, kind: 'Mesh', metadata: { name: 'default' }, spec: { mtls: { mode: 'DISABLE' } } } /* plaintext: mTLS has its own tests (mtls.test.ts) */,
    ...DEMO_CLUSTERS.map(clusterObject),
  ]);
  for (const c of DEMO_CLUSTERS) await fleet.startAgent(c);
  for (const [i, c] of DEMO_CLUSTERS.entries()) {
    servers.push(await fleet.startServer(c.name, { name: `helloworld-v${i + 1}`, version: `v${i + 1}` }));
  }
});

after(async () => {
  await fleet?.close();
});

async function client(cluster: string, target: string, name: string, rate = 60): Promise<TickLog> {
  const bootstrap = await fleet.bootstrap(cluster, 'sample', name, false);
  return new TickLog(fleet.startClient(cluster, bootstrap, { target: `xds:///${target}`, rate, name }));
}

/** Waits until every agent's view holds the three servers (cross-cluster propagation through the hub). */
async function allAgentsSee(n: number): Promise<void> {
  for (const c of DEMO_CLUSTERS) {
    await fleet.waitAgent(c.name, () => true);
    const deadline = Date.now() + 15_000;
    for (;;) {
      const r = (await (await fleet.agentFetch(c.name, '/v1/services')).json()) as {
        services: { parts: { inGlobal: boolean; endpoints: unknown[] }[] }[];
      };
      const count = r.services.flatMap((s) => s.parts.filter((p) => p.inGlobal)).reduce((k, p) => k + p.endpoints.length, 0);
      if (count === n) break;
      if (Date.now() > deadline) throw new Error(`agent ${c.name} sees ${count} endpoints, expected ${n}`);
      await new Promise((r2) => setTimeout(r2, 100));
    }
  }
}

test('a client in any cluster spreads calls over the three clusters', async () => {
  await allAgentsSee(3);
  const log = await client('cluster3', 'helloworld.sample', 'spread-client', 90);
  await log.waitFor(0, 1, (t) => t.ok > 0);
  const mark = log.mark();
  const sum = await log.ticksAfter(mark, 4);
  assert.equal(sum.failed, 0, JSON.stringify(sum.errors));
  const total = sum.ok;
  for (const b of ['cluster1/v1', 'cluster2/v2', 'cluster3/v3']) {
    const share = (sum.byBackend[b] ?? 0) / total;
    assert.ok(share > 0.2 && share < 0.47, `${b} got ${(share * 100).toFixed(1)}% of ${total} calls: ${JSON.stringify(sum.byBackend)}`);
  }
  await fleet.procs.stop(log.child);
});

test('the clusterset alias reaches the global service, a per-cluster name only its cluster', async () => {
  const alias = await client('cluster1', 'helloworld.sample.svc.clusterset.local', 'alias-client');
  const only2 = await client('cluster1', `helloworld.sample.cluster2:${HELLOWORLD_PORT}`, 'cluster2-client');
  await alias.waitFor(0, 1, (t) => t.ok > 0);
  await only2.waitFor(0, 1, (t) => t.ok > 0);
  const [a, b] = await Promise.all([alias.ticksAfter(alias.mark(), 3), only2.ticksAfter(only2.mark(), 3)]);
  assert.equal(a.failed + b.failed, 0);
  assert.deepEqual(Object.keys(a.byBackend).sort(), ['cluster1/v1', 'cluster2/v2', 'cluster3/v3']);
  assert.deepEqual(Object.keys(b.byBackend), ['cluster2/v2']);
  await fleet.procs.stop(alias.child);
  await fleet.procs.stop(only2.child);
});

test('endpoint removal and addition in one cluster reach a client in another, with no failed call', async () => {
  const log = await client('cluster1', 'helloworld.sample', 'churn-client', 100);
  await log.waitFor(0, 2, (t) => Object.keys(t.byBackend).length === 3);
  const mark = log.mark();
  assert.equal(await fleet.deregister('cluster3', { namespace: 'sample', name: 'helloworld-v3' }), 200);
  const gone = await log.waitFor(mark, 2, (t) => t.ok > 0 && !t.byBackend['cluster3/v3']);
  const s = servers[2]!;
  const back = Date.now();
  const r = await fleet.register('cluster3', { name: s.name, namespace: 'sample', service: 'helloworld', address: s.address, servicePort: HELLOWORLD_PORT, labels: { version: 'v3' } });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  const mark2 = log.mark();
  await log.waitFor(mark2, 1, (t) => (t.byBackend['cluster3/v3'] ?? 0) > 0);
  const sum = log.since(mark);
  assert.equal(sum.failed, 0, JSON.stringify(sum.errors));
  process.stdout.write(`# removal seen by the client within ${Math.max(gone, 0)} ms (1 s ticks); re-addition within ${Date.now() - back} ms\n`);
  await fleet.procs.stop(log.child);
});

test('with the hub stopped traffic keeps flowing; restarted, it keeps its objects and agents resync', async () => {
  const log = await client('cluster1', 'helloworld.sample', 'hub-outage-client', 60);
  await log.waitFor(0, 1, (t) => Object.keys(t.byBackend).length === 3);
  await fleet.stopHub();
  for (const c of DEMO_CLUSTERS) await fleet.waitAgent(c.name, (s) => s.hub.connected === false);
  const mark = log.mark();
  const during = await log.ticksAfter(mark, 3);
  assert.equal(during.failed, 0, JSON.stringify(during.errors));
  assert.deepEqual(Object.keys(during.byBackend).sort(), ['cluster1/v1', 'cluster2/v2', 'cluster3/v3']);

  // A new workload registered while the hub is away: its own cluster serves it at once...
  const extra = await fleet.startServer('cluster2', { name: 'helloworld-v2b', version: 'v2b', register: false });
  const r = await fleet.register('cluster2', { name: extra.name, namespace: 'sample', service: 'helloworld', address: extra.address, servicePort: HELLOWORLD_PORT, labels: { version: 'v2b' } });
  assert.equal(r.status, 201);

  await fleet.startHub();
  const clusters = (await (await fleet.hubFetch(`/api/v1alpha1/clusters`)).json()) as { items: { metadata: { name: string } }[] };
  assert.deepEqual(
    clusters.items.map((c) => c.metadata.name),
    ['cluster1', 'cluster2', 'cluster3'],
  );
  const meshes = (await (await fleet.hubFetch(`/api/v1alpha1/meshes`)).json()) as { items: unknown[] };
  assert.equal(meshes.items.length, 1);
  for (const c of DEMO_CLUSTERS) await fleet.waitAgent(c.name, (s) => s.hub.connected === true);
  // ...and after the resync it reaches cluster1's client through the hub.
  const mark2 = log.mark();
  await log.waitFor(mark2, 1, (t) => (t.byBackend['cluster2/v2b'] ?? 0) > 0);
  const workloads = (await (await fleet.hubFetch(`/api/v1alpha1/workloads?cluster=cluster2`)).json()) as { items: { metadata: { name: string } }[] };
  assert.deepEqual(workloads.items.map((w) => w.metadata.name).sort(), ['helloworld-v2', 'helloworld-v2b']);
  assert.equal(log.since(mark).failed, 0);
  await fleet.procs.stop(log.child);
  await fleet.deregister('cluster2', { address: extra.address });
  await fleet.procs.stop(extra.child);
});

test('an agent restarted while the hub is down serves its last view from disk', async () => {
  await allAgentsSee(3);
  await fleet.stopHub();
  await fleet.stopAgent('cluster1');
  await fleet.startAgent(DEMO_CLUSTERS[0]!);
  const st = await fleet.agentStatus('cluster1');
  assert.equal(st.viewSource, 'disk');
  assert.equal(st.hub.connected, false);
  const log = await client('cluster1', 'helloworld.sample', 'after-restart-client', 60);
  await log.waitFor(0, 2, (t) => Object.keys(t.byBackend).length === 3);
  await fleet.procs.stop(log.child);
  await fleet.startHub();
  await fleet.waitAgent('cluster1', (s) => s.hub.connected === true && s.viewSource === 'hub');
});
