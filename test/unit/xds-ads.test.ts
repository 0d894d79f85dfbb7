// ADS protocol behaviour of AdsServer, driven by a bare ADS client over loopback
// so every request is exactly what the test says.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { translateClient, translateServerListener } from '../../src/translate/xds/index.js';
import { AdsServer, type AdsEvent } from '../../src/xds/ads-server.js';
import { grpcBootstrap, nodeIdFor, parseNodeId } from '../../src/xds/bootstrap.js';
import { decodeResource } from '../../src/xds/proto.js';
import { contentHash } from '../../src/xds/cache/snapshot.js';
import { RawAdsClient, type RawResponse } from '../helpers/ads-client.js';
import { helloworldView } from '../helpers/mesh-fixture.js';
import { serverListenerName, CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, RESOURCE_TYPES, ROUTE_TYPE, mapFor, type XdsResources } from '../../src/xdsapi/index.js';
import { policySet } from '../../src/registry.js';

const HW = 'helloworld.sample';
const HW_CLUSTER = 'outbound|8080||helloworld.sample';

function resources(extra = false): XdsResources {
  const backends = [
    { cluster: 'cluster1', version: 'v1', address: '10.0.0.1', port: 50051 },
    { cluster: 'cluster2', version: 'v2', address: '10.0.0.2', port: 50051 },
  ];
  if (extra) backends.push({ cluster: 'cluster3', version: 'v3', address: '10.0.0.3', port: 50051 });
  return translateClient(helloworldView(backends), { cluster: 'cluster1', policies: policySet([]) });
}

function names(r: RawResponse): string[] {
  return r.resources.map(
    (a) => (decodeResource(a.type_url, a.value) as { name?: string; cluster_name?: string }).name ?? (decodeResource(a.type_url, a.value) as { cluster_name: string }).cluster_name,
  );
}

describe('AdsServer (state of the world)', () => {
  const clients: RawAdsClient[] = [];
  const servers: AdsServer[] = [];
  const events: AdsEvent[] = [];
  const start = async (ready = true): Promise<{ ads: AdsServer; client: () => RawAdsClient }> => {
    const ads = new AdsServer({ serverListener: translateServerListener, onEvent: (e) => events.push(e) });
    servers.push(ads);
    const port = await ads.listen();
    if (ready) ads.setResources(resources());
    return {
      ads,
      client: () => {
        const c = new RawAdsClient(`127.0.0.1:${port}`);
        clients.push(c);
        return c;
      },
    };
  };
  after(async () => {
    for (const c of clients) c.close();
    await Promise.all(servers.map((s) => s.close()));
  });

  it('holds every request until the first snapshot, then answers it', async () => {
    const { ads, client } = await start(false);
    const c = client();
    c.send({ type_url: LISTENER_TYPE, resource_names: [HW] });
    c.send({ type_url: CLUSTER_TYPE, resource_names: [] });
    await c.nothingWithin(200);
    const p = ads.proxies();
    assert.equal(p.length, 1);
    assert.equal(p[0]!.types[LISTENER_TYPE]!.subscribed, 1);
    assert.equal(p[0]!.types[LISTENER_TYPE]!.lastSentVersion, undefined);
    ads.setResources(resources());
    const got = [await c.next(), await c.next()].sort((a, b) => a.type_url.localeCompare(b.type_url));
    assert.deepEqual(
      got.map((r) => [r.type_url, r.version_info, r.resources.length]),
      [
        [CLUSTER_TYPE, '1', resources().clusters.size],
        [LISTENER_TYPE, '1', 1],
      ],
    );
  });

  it('rejects a snapshot with an invalid resource and keeps the previous one', async () => {
    const { ads } = await start();
    const v = ads.version;
    const bad = resources();
    (bad.clusters.get(HW_CLUSTER)!.message as Record<string, unknown>).lbPolicy = 'ROUND_ROBIN';
    assert.throws(() => ads.setResources(bad), /Cluster "outbound\|8080\|\|helloworld\.sample": lbPolicy: unknown field "lbPolicy".*did you mean "lb_policy"/);
    assert.equal(ads.version, v);
    ads.setResources(resources());
    assert.equal(ads.version, String(Number(v) + 1), 'no gap in versions');
  });

  it('markReady() declares an empty state complete', async () => {
    const { ads, client } = await start(false);
    const c = client();
    c.send({ type_url: LISTENER_TYPE, resource_names: [HW] });
    await c.nothingWithin(100);
    ads.markReady();
    const r = await c.next();
    assert.equal(r.resources.length, 0);
  });

  it('walks LDS -> RDS -> CDS -> EDS, records ACKs, and pushes only what changed', async () => {
    const { ads, client } = await start();
    const c = client();
    const steps: [string, string][] = [
      [LISTENER_TYPE, HW],
      [ROUTE_TYPE, HW],
      [CLUSTER_TYPE, HW_CLUSTER],
      [ENDPOINT_TYPE, HW_CLUSTER],
    ];
    for (const [type, name] of steps) {
      c.send({ type_url: type, resource_names: [name] });
      const r = await c.next();
      assert.equal(r.type_url, type);
      assert.deepEqual(names(r), [name]);
      c.ack(r, [name]);
    }
    await c.nothingWithin(50);
    const st = ads.proxies()[0]!;
    assert.equal(st.nodeId, 'test~ns~raw');
    for (const [type] of steps) {
      assert.equal(st.types[type]!.ackedVersion, '1', type);
      assert.ok(st.types[type]!.lastAckAt);
    }
    // Same content again: new snapshot, nothing re-encoded, nothing sent.
    const encodes = ads.stats().encodes;
    const before = ads.currentSnapshot()!.get(ENDPOINT_TYPE, HW_CLUSTER)!;
    ads.setResources(resources());
    assert.equal(ads.stats().encodes, encodes);
    assert.equal(ads.currentSnapshot()!.get(ENDPOINT_TYPE, HW_CLUSTER)!.any.value, before.any.value, 'same bytes reused');
    await c.nothingWithin(100);
    // One more endpoint: only the assignments change (global and per-cluster3 ones are new or different).
    ads.setResources(resources(true));
    const r = await c.next();
    assert.equal(r.type_url, ENDPOINT_TYPE);
    assert.equal(r.version_info, ads.version);
    assert.notEqual(ads.currentSnapshot()!.get(ENDPOINT_TYPE, HW_CLUSTER)!.hash, before.hash);
    await c.nothingWithin(100);
    c.ack(r, [HW_CLUSTER]);
    await c.nothingWithin(50);
    assert.equal(ads.proxies()[0]!.types[ENDPOINT_TYPE]!.ackedVersion, ads.version);
  });

  it('reuses the encoded bytes of unchanged resources across snapshots', async () => {
    const { ads } = await start();
    const l1 = ads.currentSnapshot()!.get(LISTENER_TYPE, HW)!;
    const e1 = ads.currentSnapshot()!.get(ENDPOINT_TYPE, HW_CLUSTER)!;
    const n = ads.stats().encodes;
    ads.setResources(resources(true));
    assert.equal(ads.currentSnapshot()!.get(LISTENER_TYPE, HW)!.any.value, l1.any.value, 'same Buffer object');
    assert.notEqual(ads.currentSnapshot()!.get(ENDPOINT_TYPE, HW_CLUSTER)!.any.value, e1.any.value);
    // Exactly the resources whose content changed were encoded again.
    const fresh = resources(true);
    const old = resources();
    let changed = 0;
    for (const t of RESOURCE_TYPES) {
      for (const [name, r] of mapFor(fresh, t)) {
        const o = mapFor(old, t).get(name);
        if (!o || contentHash(o) !== contentHash(r)) changed++;
      }
    }
    assert.equal(changed, 2, 'global and cluster3 assignments');
    assert.equal(ads.stats().encodes - n, changed);
  });

  it('answers every change of the name set, even when no resource changed', async () => {
    const { client } = await start();
    const c = client();
    c.send({ type_url: ENDPOINT_TYPE, resource_names: [HW_CLUSTER] });
    const r1 = await c.next();
    c.send({ type_url: ENDPOINT_TYPE, resource_names: [HW_CLUSTER, 'outbound|1||nope'], response_nonce: r1.nonce, version_info: r1.version_info });
    const r2 = await c.next();
    assert.deepEqual(names(r2), [HW_CLUSTER]);
    assert.notEqual(r2.nonce, r1.nonce);
    c.send({ type_url: ENDPOINT_TYPE, resource_names: [HW_CLUSTER], response_nonce: r2.nonce, version_info: r2.version_info });
    const r3 = await c.next();
    assert.deepEqual(names(r3), [HW_CLUSTER]);
    // An empty list on EDS is an unsubscribe: nothing to answer.
    c.send({ type_url: ENDPOINT_TYPE, resource_names: [], response_nonce: r3.nonce, version_info: r3.version_info });
    await c.nothingWithin(100);
  });

  it('records a NACK once, keeps the last good version and does not resend the rejected content', async () => {
    const { ads, client } = await start();
    const c = client();
    c.send({ type_url: CLUSTER_TYPE, resource_names: [HW_CLUSTER] });
    const r1 = await c.next();
    c.ack(r1, [HW_CLUSTER]);
    ads.setResources(resources(true)); // clusters unchanged, so nothing for CDS...
    await c.nothingWithin(50);
    const bad = resources(true);
    (bad.clusters.get(HW_CLUSTER)!.message as Record<string, unknown>).lb_policy = 'RING_HASH';
    ads.setResources(bad);
    const r2 = await c.next();
    const nacksBefore = events.filter((e) => e.kind === 'nack').length;
    const nack = { code: 3, message: 'CDS resource validation failed' };
    c.send({ type_url: CLUSTER_TYPE, resource_names: [HW_CLUSTER], response_nonce: r2.nonce, version_info: r1.version_info, error_detail: nack });
    await c.nothingWithin(100);
    const st = ads.proxies()[0]!.types[CLUSTER_TYPE]!;
    assert.equal(st.ackedVersion, r1.version_info);
    assert.equal(st.lastNack?.version, r2.version_info);
    assert.equal(st.lastNack?.message, nack.message);
    // grpc-js repeats nonce and error_detail when it changes names: answered, not a second NACK.
    c.send({ type_url: CLUSTER_TYPE, resource_names: [HW_CLUSTER, `${HW_CLUSTER}.cluster1`], response_nonce: r2.nonce, version_info: r1.version_info, error_detail: nack });
    const r3 = await c.next();
    assert.equal(r3.resources.length, 2);
    assert.equal(events.filter((e) => e.kind === 'nack').length, nacksBefore + 1);
  });

  it('ignores requests that answer an older response', async () => {
    const { ads, client } = await start();
    const c = client();
    c.send({ type_url: ENDPOINT_TYPE, resource_names: [HW_CLUSTER] });
    const r1 = await c.next();
    ads.setResources(resources(true));
    const r2 = await c.next();
    // Stale: answers r1 although r2 is out. The client will answer r2 with its current names.
    c.send({ type_url: ENDPOINT_TYPE, resource_names: [HW_CLUSTER, 'x'], response_nonce: r1.nonce, version_info: r1.version_info });
    await c.nothingWithin(100);
    assert.equal(ads.proxies()[0]!.types[ENDPOINT_TYPE]!.ackedVersion, undefined);
    c.send({ type_url: ENDPOINT_TYPE, resource_names: [HW_CLUSTER, 'x'], response_nonce: r2.nonce, version_info: r2.version_info });
    const r3 = await c.next();
    assert.deepEqual(names(r3), [HW_CLUSTER]);
    assert.equal(ads.proxies()[0]!.types[ENDPOINT_TYPE]!.ackedVersion, r2.version_info);
  });

  it('treats an empty LDS/CDS list from a client that never named anything as a wildcard (Envoy)', async () => {
    const { client } = await start();
    const envoy = client();
    envoy.send({ type_url: LISTENER_TYPE, resource_names: [] });
    const l = await envoy.next();
    assert.deepEqual(names(l), [...resources().listeners.keys()]);
    assert.ok(names(l).every((n) => !n.startsWith('grpc/server')));
    envoy.send({ type_url: CLUSTER_TYPE, resource_names: [] });
    assert.equal((await envoy.next()).resources.length, resources().clusters.size);
    // A client that named something and then sends [] wants nothing (all its listeners are gone).
    const g = client();
    g.send({ type_url: LISTENER_TYPE, resource_names: [HW] });
    const r1 = await g.next();
    g.send({ type_url: LISTENER_TYPE, resource_names: [], response_nonce: r1.nonce, version_info: r1.version_info });
    assert.equal((await g.next()).resources.length, 0);
  });

  it('serves server listeners from the callback, by exact name', async () => {
    const { ads, client } = await start();
    const c = client();
    const name = serverListenerName('127.0.0.1', 50051);
    c.send({ type_url: LISTENER_TYPE, resource_names: [name, HW, 'grpc/server?xds.resource.listening_address=localhost:1'] });
    const asked = [name, HW, 'grpc/server?xds.resource.listening_address=localhost:1'];
    const r = await c.next();
    assert.deepEqual(names(r).sort(), [name, HW].sort());
    const sl = r.resources.map((a) => decodeResource(a.type_url, a.value)).find((m) => m.name === name)!;
    assert.deepEqual(sl.address, { socket_address: { address: '127.0.0.1', port_value: 50051 } });
    c.ack(r, asked);
    // Re-evaluated on every snapshot but unchanged: nothing sent.
    ads.setResources(resources(true));
    await c.nothingWithin(100);
  });
});

describe('gRPC bootstrap', () => {
  it('has what grpc-js-xds needs, for clients and servers', () => {
    const b = grpcBootstrap({
      xdsServer: '127.0.0.1:15010',
      nodeId: nodeIdFor('cluster2', 'sample', 'helloworld-v2-0'),
      cluster: 'cluster2',
      locality: { region: 'us-west1', zone: 'us-west1-a' },
      server: true,
      metadata: { version: 'v2' },
    });
    assert.deepEqual(b, {
      xds_servers: [{ server_uri: '127.0.0.1:15010', channel_creds: [{ type: 'insecure' }], server_features: ['ignore_resource_deletion'] }],
      node: {
        id: 'cluster2~sample~helloworld-v2-0',
        cluster: 'cluster2',
        locality: { region: 'us-west1', zone: 'us-west1-a', sub_zone: 'cluster2' },
        metadata: { version: 'v2' },
      },
      server_listener_resource_name_template: 'grpc/server?xds.resource.listening_address=%s',
    });
    assert.deepEqual(parseNodeId('cluster2~sample~helloworld-v2-0'), { cluster: 'cluster2', namespace: 'sample', workload: 'helloworld-v2-0' });
    assert.equal(parseNodeId('bad'), undefined);
    const client = grpcBootstrap({ xdsServer: 'x:1', nodeId: 'a~b~c', cluster: 'a', locality: { region: '', zone: '' } });
    assert.ok(!('server_listener_resource_name_template' in client));
  });
});
