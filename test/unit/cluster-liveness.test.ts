// Cluster liveness: the hub's transitions (src/hub/cluster-liveness.ts) against a
// real FileStore with a hand-driven clock, what federation marks on a stale
// cluster's endpoints, and the priorities a Withdrawn cluster's localities get.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { API_VERSION, type Cluster, type Service, type Workload } from '../../src/api/index.js';
import { federate } from '../../src/federation/federate.js';
import { FederationIndex } from '../../src/federation/incremental.js';
import { ClusterLiveness, LIVENESS_TICK_MS, livenessAfterSilence } from '../../src/hub/cluster-liveness.js';
import { FileStore } from '../../src/store/file-store.js';
import { demoteWithdrawn } from '../../src/translate/xds/endpoints.js';
import { eventually } from '../helpers/eventually.js';

const quiet = { warn: () => undefined, error: () => undefined };

function cluster(name: string, status?: Cluster['status']): Cluster {
  return { apiVersion: API_VERSION, kind: 'Cluster', metadata: { name }, spec: { network: 'default', region: 'r1', zones: ['a'] }, ...(status ? { status } : {}) } as Cluster;
}

test('silence moves a cluster from Live to Suspect at suspectAfter and to Withdrawn at the hold-down', () => {
  const s = { suspectAfterMs: 5000, holdDownMs: 30_000 };
  assert.equal(livenessAfterSilence(4999, s), 'Live');
  assert.equal(livenessAfterSilence(5000, s), 'Suspect');
  assert.equal(livenessAfterSilence(29_999, s), 'Suspect');
  assert.equal(livenessAfterSilence(30_000, s), 'Withdrawn');
});

test('Withdrawn localities go below every other, each side keeping its order, contiguous from 0', () => {
  assert.deepEqual(demoteWithdrawn([0, 0, 0], [false, true, false]), [0, 1, 0]);
  assert.deepEqual(demoteWithdrawn([0, 1, 1, 2], [true, false, false, false]), [2, 0, 0, 1]);
  assert.deepEqual(demoteWithdrawn([0, 1, 2, 2], [false, true, false, true]), [0, 2, 1, 3]);
  // Nothing withdrawn, or everything: nothing to go below.
  assert.deepEqual(demoteWithdrawn([0, 1], [false, false]), [0, 1]);
  assert.deepEqual(demoteWithdrawn([0, 1], [true, true]), [0, 1]);
});

test('the hub: Live on connect, Suspect and Withdrawn from silence (one write each, none per heartbeat), Live again when heard; a restart demotes nobody', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'meshfed-liveness-'));
  let now = Date.parse('2026-01-01T00:00:00Z');
  const clock = () => now;
  let store = await FileStore.open(join(dir, 'data'), { logger: quiet });
  try {
    await store.commit([
      { type: 'put', object: cluster('c1') },
      { type: 'put', object: { apiVersion: API_VERSION, kind: 'Mesh', metadata: { name: 'default' }, spec: { liveness: { suspectAfter: '2s', holdDown: '5s' } } } as never },
    ]);
    const stateOf = async () => ((await store.get({ kind: 'Cluster', name: 'c1' })) as Cluster).status;
    let lv = new ClusterLiveness(store, clock);
    await lv.start();
    lv.connected('c1', { version: '1.0' });
    await lv.settled();
    assert.deepEqual((await stateOf())?.liveness, { state: 'Live', since: '2026-01-01T00:00:00.000Z' });
    assert.equal((await stateOf())?.agent?.connected, true);

    const rev = store.revision();
    for (let i = 0; i < 10; i++) {
      now += 1000;
      lv.heard('c1');
    }
    await new Promise((r) => setTimeout(r, 3 * LIVENESS_TICK_MS));
    await lv.settled();
    assert.equal(store.revision(), rev, 'heartbeats of a Live cluster write nothing');

    const lastHeard = new Date(now).toISOString();
    now += 2500;
    await eventually('Suspect', async () => ((await stateOf())?.liveness?.state === 'Suspect' ? true : undefined));
    assert.deepEqual((await stateOf())?.liveness, { state: 'Suspect', since: new Date(now).toISOString(), lastHeartbeat: lastHeard });
    now += 3000;
    await eventually('Withdrawn', async () => ((await stateOf())?.liveness?.state === 'Withdrawn' ? true : undefined));
    assert.equal((await stateOf())?.liveness?.lastHeartbeat, lastHeard);
    const withdrawnRev = store.revision();
    await new Promise((r) => setTimeout(r, 3 * LIVENESS_TICK_MS));
    assert.equal(store.revision(), withdrawnRev, 'no rewrite while it stays Withdrawn');

    lv.heard('c1');
    await lv.settled();
    assert.equal((await stateOf())?.liveness?.state, 'Live');

    // A hub restart after a long outage: silence counts from the new start, not from the last heartbeat.
    lv.disconnected('c1');
    await lv.settled();
    lv.stop();
    await store.close();
    now += 60_000;
    store = await FileStore.open(join(dir, 'data'), { logger: quiet });
    lv = new ClusterLiveness(store, clock);
    await lv.start();
    await new Promise((r) => setTimeout(r, 3 * LIVENESS_TICK_MS));
    assert.equal((await stateOf())?.liveness?.state, 'Live');
    now += 2500;
    await eventually('Suspect after the restart', async () => ((await stateOf())?.liveness?.state === 'Suspect' ? true : undefined));
    lv.stop();
    await lv.settled();
  } finally {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test("federation marks a stale cluster's endpoints; a Withdrawn one's as withdrawn; an agent's own cluster is always Live", () => {
  const svc = (c: string): Service =>
    ({ apiVersion: API_VERSION, kind: 'Service', metadata: { name: 'hw', namespace: 'ns' }, spec: { cluster: c, ports: [{ name: 'grpc', port: 1, protocol: 'GRPC' }], exported: true } }) as Service;
  const wl = (c: string): Workload =>
    ({
      apiVersion: API_VERSION,
      kind: 'Workload',
      metadata: { name: `w-${c}`, namespace: 'ns' },
      spec: { cluster: c, service: 'hw', address: '10.0.0.1', ports: { grpc: 1 }, health: 'HEALTHY', serviceAccount: 'default' },
    }) as Workload;
  const clusters = [
    cluster('c1', { liveness: { state: 'Live', since: 't0' } }),
    cluster('c2', { liveness: { state: 'Suspect', since: 't2', lastHeartbeat: 't1' } }),
    cluster('c3', { liveness: { state: 'Withdrawn', since: 't3', lastHeartbeat: 't1' } }),
  ];
  const view = federate({ clusters, services: ['c1', 'c2', 'c3'].map(svc), workloads: ['c1', 'c2', 'c3'].map(wl) });
  const eps = view.services[0]!.parts.map((p) => ({ c: p.cluster, stale: p.endpoints[0]!.staleSince, withdrawn: p.endpoints[0]!.withdrawn }));
  assert.deepEqual(eps, [
    { c: 'c1', stale: undefined, withdrawn: undefined },
    { c: 'c2', stale: 't1', withdrawn: undefined },
    { c: 'c3', stale: 't1', withdrawn: true },
  ]);

  // The incremental index: a liveness change recomputes only the services with a part in that cluster.
  const idx = new FederationIndex();
  idx.setClusters(clusters, undefined, 'c3');
  idx.upsertService(svc('c1'));
  idx.upsertService(svc('c3'));
  idx.upsertService({ ...svc('c2'), metadata: { name: 'other', namespace: 'ns' } } as Service);
  ['c1', 'c2', 'c3'].forEach((c) => idx.upsertWorkload(wl(c)));
  idx.flush();
  const hw = () => idx.view().services.find((s) => s.name === 'hw')!;
  assert.equal(hw().parts[0]!.endpoints[0]!.staleSince, undefined);
  assert.deepEqual(hw().parts.find((p) => p.cluster === 'c3')!.endpoints[0]!.withdrawn, undefined, "the agent's own cluster is never withdrawn by itself");
  const c1Suspect = [cluster('c1', { liveness: { state: 'Suspect', since: 't5', lastHeartbeat: 't4' } }), ...clusters.slice(1)];
  idx.setClusters(c1Suspect, undefined, 'c3');
  assert.deepEqual([...idx.flush().changed.keys()], ['ns/hw']);
  assert.equal(idx.view().services.find((s) => s.name === 'hw')!.parts[0]!.endpoints[0]!.staleSince, 't4');
});
