// The hub <-> agent channel with real processes: delta reports, scoping the
// view to imported namespaces, and deleting a Cluster.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { LocalFleet, clusterObject, type ClusterSpec } from '../../src/demo/fleet.js';

const A: ClusterSpec = { name: 'east', network: 'n1', region: 'r1', zones: ['z1'] };
const B: ClusterSpec = { name: 'west', network: 'n1', region: 'r2', zones: ['z2'] };
let fleet: LocalFleet;

before(async () => {
  fleet = await LocalFleet.create();
  await fleet.startHub();
  await fleet.apply([clusterObject(A), clusterObject(B)]);
  await fleet.startAgent(A);
  await fleet.startAgent(B, { extraArgs: ['--import-namespace', 'sample'] });
});

after(async () => {
  await fleet?.close();
});

async function eventually<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** GET a hub path (/api/...) or an agent path (agent name, /v1/...) with the fleet's credentials. */
const getJson = async <T>(path: string, agent?: string): Promise<T> => (await (agent ? fleet.agentFetch(agent, path) : fleet.hubFetch(path))).json() as Promise<T>;

test('reports after the first are deltas: the hub follows registrations and deregistrations', async () => {
  const gen0 = await eventually('a session', async () => (await getJson<{ items: { cluster: string; reportGeneration: number }[] }>(`/api/v1alpha1/agents`)).items.find((i) => i.cluster === 'east'));
  assert.equal((await fleet.register('east', { namespace: 'sample', service: 'hello', address: '10.1.0.1:8080', name: 'hello-1' })).status, 201);
  assert.equal((await fleet.register('east', { namespace: 'tools', service: 'echo', address: '10.1.0.2:9090', name: 'echo-1' })).status, 201);
  await eventually('both workloads at the hub', async () => {
    const w = await getJson<{ items: unknown[] }>(`/api/v1alpha1/workloads?cluster=east`);
    return w.items.length === 2 ? true : undefined;
  });
  const gen1 = (await getJson<{ items: { cluster: string; reportGeneration: number }[] }>(`/api/v1alpha1/agents`)).items.find((i) => i.cluster === 'east')!;
  assert.ok(gen1.reportGeneration > gen0.reportGeneration);
  assert.equal(await fleet.deregister('east', { namespace: 'tools', name: 'echo-1' }), 200);
  await eventually('the deregistration at the hub', async () => {
    const w = await getJson<{ items: { metadata: { name: string } }[] }>(`/api/v1alpha1/workloads?cluster=east`);
    return w.items.length === 1 && w.items[0]!.metadata.name === 'hello-1' ? true : undefined;
  });
  // The Service of a deregistered last workload disappears too.
  const svcs = await getJson<{ items: { metadata: { name: string } }[] }>(`/api/v1alpha1/services?cluster=east`);
  assert.deepEqual(
    svcs.items.map((s) => s.metadata.name),
    ['hello'],
  );
  const cl = await getJson<{ status: { services: number; workloads: number } }>(`/api/v1alpha1/clusters/east`);
  assert.deepEqual([cl.status.services, cl.status.workloads], [1, 1]);
});

test('an agent that imports one namespace receives only that namespace', async () => {
  assert.equal((await fleet.register('east', { namespace: 'tools', service: 'echo', address: '10.1.0.2:9090', name: 'echo-1' })).status, 201);
  const names = await eventually('west to see east/sample/hello', async () => {
    const v = await getJson<{ services: { name: string; namespace: string }[] }>(`/v1/services`, 'west');
    return v.services.length > 0 ? v.services.map((s) => `${s.namespace}/${s.name}`) : undefined;
  });
  // Give the tools registration time to have reached the hub and be filtered out.
  await eventually('echo at the hub', async () => ((await getJson<{ items: unknown[] }>(`/api/v1alpha1/workloads?namespace=tools`)).items.length === 1 ? true : undefined));
  await new Promise((r) => setTimeout(r, 300));
  const after = await getJson<{ services: { name: string; namespace: string }[] }>(`/v1/services`, 'west');
  assert.deepEqual(names, ['sample/hello']);
  assert.deepEqual(
    after.services.map((s) => `${s.namespace}/${s.name}`),
    ['sample/hello'],
  );
  const agents = await getJson<{ items: { cluster: string; importNamespaces: string[] }[] }>(`/api/v1alpha1/agents`);
  assert.deepEqual(agents.items.find((a) => a.cluster === 'west')!.importNamespaces, ['sample']);
});

test('deleting a Cluster removes what its agent reported and cuts the agent off', async () => {
  const r = await fleet.hubFetch(`/api/v1alpha1/clusters/east`, { method: 'DELETE' });
  assert.equal(r.status, 200);
  const w = await getJson<{ items: unknown[] }>(`/api/v1alpha1/workloads?cluster=east`);
  assert.equal(w.items.length, 0);
  await fleet.waitAgent('east', (s) => s.hub.connected === false && /not registered at the hub|was deleted/.test(s.hub.lastError ?? ''));
  // The other cluster's agent stops seeing east's services.
  await eventually('west to drop east', async () => {
    const v = await getJson<{ services: unknown[] }>(`/v1/services`, 'west');
    return v.services.length === 0 ? true : undefined;
  });
});
