// End to end: the AdsServer in this process configures real @grpc/grpc-js-xds
// server and client processes (helloworld sample), all on 127.0.0.1.
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import { translateClient, translateServerListener } from '../../src/translate/xds/index.js';
import { AdsServer, type AdsEvent } from '../../src/xds/ads-server.js';
import { grpcBootstrap, nodeIdFor } from '../../src/xds/bootstrap.js';
import { helloworldView, type HelloworldBackend } from '../helpers/mesh-fixture.js';
import { distPath, eventually, freePorts, spawnNode, stopAll, type JsonLine, type NodeProc } from '../helpers/procs.js';
import { ENDPOINT_TYPE, LISTENER_TYPE, RESOURCE_TYPES } from '../../src/xdsapi/index.js';
import { policySet } from '../../src/registry.js';

const SERVER = distPath('src/samples/helloworld/server.js');
const CLIENT = distPath('src/samples/helloworld/client.js');
const REGION: Record<string, [string, string]> = { cluster1: ['us-east1', 'us-east1-a'], cluster2: ['us-west1', 'us-west1-a'], cluster3: ['eu-west1', 'eu-west1-a'] };

type Tick = JsonLine & { ok: number; failed: number; byBackend: Record<string, number>; errors: Record<string, number> };
const isTick = (l: JsonLine): l is Tick => l.event === 'tick';

describe('xDS end to end with grpc-js-xds processes', () => {
  let ads: AdsServer;
  let xdsAddr: string;
  let backends: HelloworldBackend[];
  let servers: NodeProc[] = [];
  let client: NodeProc;
  const events: (AdsEvent & { at: number })[] = [];
  const logs: string[] = [];

  const bootstrapEnv = (cluster: string, workload: string, server: boolean): Record<string, string> => {
    const [region, zone] = REGION[cluster]!;
    const b = grpcBootstrap({ xdsServer: xdsAddr, nodeId: nodeIdFor(cluster, 'sample', workload), cluster, locality: { region, zone }, server });
    return { GRPC_XDS_BOOTSTRAP_CONFIG: JSON.stringify(b) };
  };
  const spawnClient = (name: string, cluster: string, args: string[]): NodeProc => spawnNode(name, CLIENT, args, bootstrapEnv(cluster, name, false));
  const resourcesFor = (bs: HelloworldBackend[]) => translateClient(helloworldView(bs), { cluster: 'cluster1', policies: policySet([]) });
  const ackOf = (nodeId: string, typeUrl: string, version: string) => events.find((e) => e.kind === 'ack' && e.nodeId === nodeId && e.typeUrl === typeUrl && e.version === version);
  const ticksAfter = (i: number) => client.lines.slice(i).filter(isTick);

  before(async () => {
    ads = new AdsServer({ serverListener: translateServerListener, log: (m) => logs.push(m), onEvent: (e) => events.push({ ...e, at: performance.now() }) });
    xdsAddr = `127.0.0.1:${await ads.listen('127.0.0.1', 0)}`;
    const ports = await freePorts(3);
    backends = ['cluster1', 'cluster2', 'cluster3'].map((cluster, i) => ({ cluster, version: `v${i + 1}`, address: '127.0.0.1', port: ports[i]!, zone: REGION[cluster]![1] }));
  });

  after(async () => {
    await stopAll();
    await ads.close();
  });

  it('holds every request until the first snapshot; servers and an early client are served after it', async (t) => {
    servers = backends.map((b) =>
      spawnNode(
        `server-${b.cluster}`,
        SERVER,
        ['--address', b.address, '--port', String(b.port), '--cluster', b.cluster, '--version', b.version, '--name', `helloworld-${b.version}-0`],
        bootstrapEnv(b.cluster, `helloworld-${b.version}-0`, true),
      ),
    );
    client = spawnClient('client-global', 'cluster1', ['--target', 'xds:///helloworld.sample', '--rate', '40', '--deadline-ms', '4000']);
    // Everyone connected and asked for its listener; nobody got an answer.
    await eventually(() => ads.proxies().filter((p) => p.types[LISTENER_TYPE]?.subscribed === 1).length === 4, 20_000, 'four proxies subscribed to their listener');
    await new Promise((r) => setTimeout(r, 200));
    for (const p of ads.proxies()) assert.equal(p.types[LISTENER_TYPE]!.lastSentVersion, undefined, `${p.nodeId} was answered before ready`);
    assert.ok(!servers.some((s) => s.lines.some((l) => l.event === 'serving')));
    assert.ok(!client.lines.some((l) => isTick(l) && l.ok + l.failed > 0), 'no call may complete before ready');
    const serverSubs = ads.proxies().filter((p) => p.nodeId !== nodeIdFor('cluster1', 'sample', 'client-global'));
    assert.equal(serverSubs.length, 3);

    const t0 = performance.now();
    ads.setResources(resourcesFor(backends));
    await Promise.all(servers.map((s) => s.waitFor((l) => l.event === 'serving', 10_000, 'serving')));
    const tServing = performance.now() - t0;
    const firstOk = await client.waitFor((l) => isTick(l) && l.ok > 0, 10_000, 'a successful call');
    t.diagnostic(`setResources -> all 3 servers serving: ${tServing.toFixed(0)} ms`);
    const clientNode = nodeIdFor('cluster1', 'sample', 'client-global');
    const edsAck = await eventually(() => ackOf(clientNode, ENDPOINT_TYPE, ads.version!), 5000, 'client EDS ACK');
    t.diagnostic(`setResources -> early client has ACKed LDS, RDS, CDS and EDS: ${(edsAck.at - t0).toFixed(0)} ms`);
    t.diagnostic(`first tick with successes: ${JSON.stringify(firstOk)}`);
  });

  it('spreads calls across the three clusters', async (t) => {
    // Let every backend become READY, then measure two whole seconds.
    await eventually(() => ticksAfter(0).some((k) => Object.keys(k.byBackend).length === 3), 10_000, 'a tick reaching all three clusters');
    const from = client.lines.length;
    await eventually(() => ticksAfter(from).length >= 2, 5000, 'two ticks');
    const ticks = ticksAfter(from).slice(0, 2);
    const sum: Record<string, number> = {};
    let failed = 0;
    for (const k of ticks) {
      failed += k.failed;
      for (const [b, n] of Object.entries(k.byBackend)) sum[b] = (sum[b] ?? 0) + n;
    }
    const total = Object.values(sum).reduce((a, b) => a + b, 0);
    t.diagnostic(`2 s of calls: ${JSON.stringify(sum)}, failed ${failed}`);
    assert.equal(failed, 0, JSON.stringify(ticks));
    assert.deepEqual(Object.keys(sum).sort(), ['cluster1/v1', 'cluster2/v2', 'cluster3/v3']);
    for (const [b, n] of Object.entries(sum)) assert.ok(n / total > 0.1, `${b} got ${n} of ${total}`);
  });

  it('shows ACKed versions for the client and the servers in proxies()', () => {
    const v = ads.version!;
    const byNode = new Map(ads.proxies().map((p) => [p.nodeId, p]));
    const c = byNode.get('cluster1~sample~client-global')!;
    assert.ok(c, [...byNode.keys()].join(', '));
    assert.equal(c.nodeCluster, 'cluster1');
    assert.deepEqual(c.locality, { region: 'us-east1', zone: 'us-east1-a', subZone: 'cluster1' });
    for (const type of RESOURCE_TYPES) {
      assert.equal(c.types[type]?.ackedVersion, v, `client ${type}`);
      assert.equal(c.types[type]?.lastNack, undefined);
    }
    for (const b of backends) {
      const s = byNode.get(`${b.cluster}~sample~helloworld-${b.version}-0`)!;
      assert.ok(s, `server ${b.cluster}`);
      assert.equal(s.types[LISTENER_TYPE]?.ackedVersion, v);
      assert.equal(s.types[LISTENER_TYPE]?.subscribed, 1);
      assert.equal(Object.keys(s.types).length, 1, 'servers use an inline route config');
    }
    assert.ok(ads.proxies().every((p) => p.userAgent.startsWith('gRPC Node')));
    assert.ok(byNode.get('cluster3~sample~helloworld-v3-0')!.types[LISTENER_TYPE]!.lastSentVersion);
  });

  it('stops sending to a cluster whose endpoints are removed, without failed calls', async (t) => {
    const clientNode = nodeIdFor('cluster1', 'sample', 'client-global');
    const from = client.lines.length;
    const sentBefore = events.length;
    const t0 = performance.now();
    ads.setResources(resourcesFor(backends.filter((b) => b.cluster !== 'cluster3')));
    const v = ads.version!;
    const ack = await eventually(() => ackOf(clientNode, ENDPOINT_TYPE, v), 5000, 'client EDS ACK of the update');
    t.diagnostic(`setResources -> client EDS ACK: ${(ack.at - t0).toFixed(1)} ms`);
    // Only the client's assignment changed: nothing else was pushed to anyone.
    const sends = events.slice(sentBefore).filter((e) => e.kind === 'send');
    assert.deepEqual(
      sends.map((e) => `${e.nodeId} ${e.kind === 'send' ? e.typeUrl : ''}`),
      [`${clientNode} ${ENDPOINT_TYPE}`],
    );
    // The tick in progress may still hold calls made before the update; the two after it may not.
    const ackTickIndex = client.lines.length;
    await eventually(() => ticksAfter(ackTickIndex).length >= 3, 6000, 'three ticks');
    const all = ticksAfter(from);
    const later = ticksAfter(ackTickIndex).slice(1, 3);
    t.diagnostic(`ticks since the update: ${JSON.stringify(all.map((k) => k.byBackend))}`);
    assert.equal(
      all.reduce((a, k) => a + k.failed, 0),
      0,
      JSON.stringify(all.map((k) => k.errors)),
    );
    for (const k of later) {
      assert.equal(k.byBackend['cluster3/v3'], undefined, JSON.stringify(k));
      assert.ok(k.ok > 0);
    }
  });

  it('reaches one cluster by its per-cluster name, and the rest by the alias', async () => {
    const perCluster = spawnClient('client-cluster2', 'cluster1', ['--target', 'xds:///helloworld.sample.cluster2:8080', '--count', '20', '--rate', '50', '--deadline-ms', '3000']);
    const alias = spawnClient('client-alias', 'cluster1', ['--target', 'xds:///helloworld.sample.svc.clusterset.local', '--count', '150', '--rate', '100', '--deadline-ms', '3000']);
    const [a, b] = await Promise.all([perCluster.waitFor((l) => l.event === 'done', 15_000, 'done'), alias.waitFor((l) => l.event === 'done', 15_000, 'done')]);
    assert.deepEqual(a.byBackend, { 'cluster2/v2': 20 });
    assert.equal(a.failed, 0);
    assert.equal(b.failed, 0, JSON.stringify(b.errors));
    assert.deepEqual(Object.keys(b.byBackend as Record<string, number>).sort(), ['cluster1/v1', 'cluster2/v2']);
  });

  it('survives a control-plane restart: cached config serves, the new server holds until ready', async (t) => {
    const clientNode = nodeIdFor('cluster1', 'sample', 'client-global');
    const port = Number(xdsAddr.split(':')[1]);
    const from = client.lines.length;
    const current = resourcesFor(backends.filter((b) => b.cluster !== 'cluster3'));
    await ads.close();
    await new Promise((r) => setTimeout(r, 500));
    events.length = 0;
    ads = new AdsServer({ serverListener: translateServerListener, log: (m) => logs.push(m), onEvent: (e) => events.push({ ...e, at: performance.now() }) });
    const t0 = performance.now();
    await ads.listen('127.0.0.1', port);
    // Everyone comes back and asks again; nothing is answered yet (an empty answer would delete their config).
    await eventually(() => ads.proxies().filter((p) => p.types[LISTENER_TYPE]?.subscribed).length === 4, 15_000, 'four proxies back');
    const tBack = performance.now() - t0;
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(!events.some((e) => e.kind === 'send'));
    const tSet = performance.now();
    ads.setResources(current);
    const ack = await eventually(() => ackOf(clientNode, ENDPOINT_TYPE, ads.version!), 5000, 'client EDS ACK after restart');
    t.diagnostic(`restart: all 4 proxies resubscribed ${tBack.toFixed(0)} ms after listen; setResources -> client EDS ACK ${(ack.at - tSet).toFixed(0)} ms`);
    const mark = client.lines.length;
    await eventually(() => ticksAfter(mark).length >= 1, 3000, 'a tick after the restart');
    const ticks = ticksAfter(from);
    assert.equal(
      ticks.reduce((a, k) => a + k.failed, 0),
      0,
      JSON.stringify(ticks.map((k) => k.errors)),
    );
    assert.ok(
      ticks.every((k) => k.ok > 0),
      'calls kept flowing from the cached config',
    );
  });

  it('lets the client print its totals and exit on SIGTERM', async () => {
    await client.stop(5000);
    const done = client.lines.find((l) => l.event === 'done') as (Tick & { started: number }) | undefined;
    assert.ok(done, client.stderr());
    assert.equal(done.ok + done.failed, done.started);
    const { code } = await client.exited;
    assert.equal(code, 0);
    for (const s of servers) {
      await s.stop(2000);
      assert.equal((await s.exited).code, 0, s.stderr());
    }
  });
});
