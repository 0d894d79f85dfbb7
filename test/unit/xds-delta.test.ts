// Incremental (delta) ADS, driven by a bare client that follows the protocol
// spec (test/helpers/delta-client.ts), on the same cache as state of the world.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { translateServerListener } from '../../src/translate/xds/index.js';
import { AdsServer, type AdsEvent, type AdsServerOptions } from '../../src/xds/ads-server.js';
import { decodeResource } from '../../src/xds/proto.js';
import { contentHash } from '../../src/xds/cache/snapshot.js';
import { RawAdsClient } from '../helpers/ads-client.js';
import { DeltaAdsClient, type DeltaResponse } from '../helpers/delta-client.js';
import { assignment, cluster, clusterName, fleet, listener, svcName } from '../helpers/envoy-fleet.js';
import { serverListenerName, CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE } from '../../src/xdsapi/index.js';

const got = (r: DeltaResponse): string[] => r.resources.map((x) => x.name).sort();

describe('AdsServer incremental (delta) xDS', () => {
  const clients: { close(): void }[] = [];
  const servers: AdsServer[] = [];
  const start = async (opts: AdsServerOptions = {}, ready = true) => {
    const events: AdsEvent[] = [];
    const ads = new AdsServer({ serverListener: translateServerListener, ...opts, onEvent: (e) => events.push(e) });
    servers.push(ads);
    const port = await ads.listen();
    if (ready) ads.setResources(fleet(5));
    const client = (id = 'test~ns~delta'): DeltaAdsClient => {
      const c = new DeltaAdsClient(`127.0.0.1:${port}`, { id, cluster: 'test', locality: { region: 'r', zone: 'z' } });
      clients.push(c);
      return c;
    };
    return { ads, client, events, port };
  };
  after(async () => {
    for (const c of clients) c.close();
    await Promise.all(servers.map((s) => s.close()));
  });

  it('holds requests until ready, then answers a legacy wildcard (empty first LDS request) with every listener', async () => {
    const { ads, client } = await start({}, false);
    const c = client();
    c.send({ type_url: LISTENER_TYPE });
    await c.nothingWithin(100);
    ads.setResources(fleet(5));
    const r = await c.next();
    assert.equal(r.type_url, LISTENER_TYPE);
    assert.deepEqual(got(r), [0, 1, 2, 3, 4].map(svcName).sort());
    assert.equal(r.system_version_info, ads.typeVersion(LISTENER_TYPE));
    assert.deepEqual(r.removed_resources, []);
    // Per-resource versions are the ones the cache assigned.
    for (const x of r.resources) assert.equal(x.version, ads.currentSnapshot()!.get(LISTENER_TYPE, x.name)!.version);
    assert.equal(r.resources[0]!.version, contentHash(listener(Number(/svc-(\d+)/.exec(r.resources[0]!.name)![1]))));
    assert.equal(decodeResource(LISTENER_TYPE, r.resources[0]!.resource!.value).name, r.resources[0]!.name);
    c.ack(r);
    await c.nothingWithin(50);
    const p = ads.proxies()[0]!;
    assert.equal(p.protocol, 'delta');
    assert.equal(p.types[LISTENER_TYPE]!.wildcard, true);
    assert.equal(p.types[LISTENER_TYPE]!.ackedVersion, r.system_version_info);
    assert.equal(p.types[LISTENER_TYPE]!.knownResources, 5);
  });

  it('subscribes, ACKs, sends only changed resources, removed_resources on removal, and nothing after an unsubscribe', async () => {
    const { ads, client, events } = await start();
    const c = client();
    c.subscribe(ENDPOINT_TYPE, [clusterName(0), clusterName(1), 'outbound|1||missing']);
    const r1 = await c.next();
    assert.deepEqual(got(r1), [clusterName(0), clusterName(1)]);
    assert.deepEqual(r1.removed_resources, ['outbound|1||missing'], 'a subscribed name that does not exist');
    c.ack(r1);
    c.subscribe(CLUSTER_TYPE, [clusterName(0)]);
    c.ack(await c.next());
    await c.nothingWithin(50);
    assert.equal(ads.proxies()[0]!.types[ENDPOINT_TYPE]!.ackedVersion, r1.system_version_info);

    const encodes = ads.stats().encodes;
    ads.applyChanges({ upserts: [assignment(0, 1), assignment(2, 1)], removals: [] });
    assert.equal(ads.stats().encodes - encodes, 2);
    const r2 = await c.next();
    assert.equal(r2.type_url, ENDPOINT_TYPE);
    assert.deepEqual(got(r2), [clusterName(0)], 'only the changed, subscribed one; the cluster is not resent');
    assert.equal(r2.resources[0]!.version, contentHash(assignment(0, 1)));
    assert.notEqual(r2.system_version_info, r1.system_version_info);
    c.ack(r2);
    await c.nothingWithin(50);

    ads.applyChanges({ upserts: [], removals: [{ typeUrl: ENDPOINT_TYPE, name: clusterName(1) }] });
    const r3 = await c.next();
    assert.deepEqual([r3.resources.length, r3.removed_resources], [0, [clusterName(1)]]);
    c.ack(r3);

    // Unsubscribing needs no answer; later changes of that name are not sent.
    const mark = events.length;
    c.unsubscribe(ENDPOINT_TYPE, [clusterName(0)]);
    await c.nothingWithin(50);
    ads.applyChanges({ upserts: [assignment(0, 2)], removals: [] });
    await c.nothingWithin(80);
    assert.equal(events.slice(mark).filter((e) => e.kind === 'send').length, 0);
    // Subscribing again sends it, changed or not.
    c.subscribe(ENDPOINT_TYPE, [clusterName(0)]);
    assert.deepEqual(got(await c.next()), [clusterName(0)]);
    c.subscribe(ENDPOINT_TYPE, [clusterName(0)]);
    assert.deepEqual(got(await c.next()), [clusterName(0)], 'the client may have dropped it: resend');
  });

  it('wildcard with "*": additions and removals of the type reach it; unsubscribing a name it also covers is answered', async () => {
    const { ads, client } = await start();
    const c = client();
    c.subscribe(CLUSTER_TYPE, ['*', clusterName(0)]);
    const r1 = await c.next();
    assert.equal(r1.resources.length, 5);
    c.ack(r1);
    ads.applyChanges({ upserts: [cluster(9)], removals: [{ typeUrl: CLUSTER_TYPE, name: clusterName(4) }] });
    const r2 = await c.next();
    assert.deepEqual([got(r2), r2.removed_resources], [[clusterName(9)], [clusterName(4)]]);
    c.ack(r2);
    // Still in the wildcard: resent so the client knows to keep it.
    c.unsubscribe(CLUSTER_TYPE, [clusterName(0)]);
    const r3 = await c.next();
    assert.deepEqual([got(r3), r3.removed_resources], [[clusterName(0)], []]);
    c.ack(r3);
    // Dropping the wildcard needs no answer; nothing of the type is pushed any more.
    c.unsubscribe(CLUSTER_TYPE, ['*']);
    await c.nothingWithin(50);
    ads.applyChanges({ upserts: [cluster(10)], removals: [] });
    await c.nothingWithin(80);
    assert.equal(ads.proxies()[0]!.types[CLUSTER_TYPE]!.wildcard, false);
  });

  it('on reconnect with initial_resource_versions sends only what is newer, and removes what is gone', async () => {
    const { ads, client } = await start();
    const c = client();
    c.subscribe(LISTENER_TYPE, ['*']);
    c.ack(await c.next());
    c.subscribe(ENDPOINT_TYPE, [clusterName(0), clusterName(1), clusterName(2)]);
    c.ack(await c.next());
    assert.equal(c.heldFor(ENDPOINT_TYPE).size, 3);
    // While the client is away: one assignment changes, one is removed, a listener is added.
    c.disconnect();
    await new Promise((r) => setTimeout(r, 50));
    ads.applyChanges({ upserts: [assignment(1, 4), listener(7)], removals: [{ typeUrl: ENDPOINT_TYPE, name: clusterName(2) }] });
    c.reconnect();
    const rs = [await c.next(), await c.next()].sort((a, b) => a.type_url.localeCompare(b.type_url));
    const [eds, lds] = rs[0]!.type_url === ENDPOINT_TYPE ? [rs[0]!, rs[1]!] : [rs[1]!, rs[0]!];
    assert.deepEqual([got(lds), lds.removed_resources], [[svcName(7)], []], 'only the new listener');
    assert.deepEqual([got(eds), eds.removed_resources], [[clusterName(1)], [clusterName(2)]], 'only the changed assignment; the removed one named');
    await c.nothingWithin(80);
  });

  it('records a NACK, keeps the last good version and does not resend the rejected content; the next change is sent', async () => {
    const { ads, client } = await start();
    const c = client();
    c.subscribe(ENDPOINT_TYPE, [clusterName(0)]);
    const r1 = await c.next();
    c.ack(r1);
    ads.applyChanges({ upserts: [assignment(0, 1)], removals: [] });
    const r2 = await c.next();
    c.nack(r2, 'endpoint rejected');
    await c.nothingWithin(50);
    const st = ads.proxies()[0]!.types[ENDPOINT_TYPE]!;
    assert.equal(st.ackedVersion, r1.system_version_info);
    assert.deepEqual([st.lastNack?.version, st.lastNack?.message], [r2.system_version_info, 'endpoint rejected']);
    assert.equal(c.heldFor(ENDPOINT_TYPE).get(clusterName(0)), r1.resources[0]!.version, 'the client keeps its last good version');
    ads.applyChanges({ upserts: [assignment(0, 1)], removals: [] });
    await c.nothingWithin(80);
    ads.applyChanges({ upserts: [assignment(0, 2)], removals: [] });
    const r3 = await c.next();
    assert.equal(r3.resources[0]!.version, contentHash(assignment(0, 2)));
    c.ack(r3);
    await c.nothingWithin(30);
    assert.equal(ads.proxies()[0]!.types[ENDPOINT_TYPE]!.ackedVersion, r3.system_version_info);
  });

  it('answers several responses in flight each once, and honours subscriptions on a stale nonce', async () => {
    const { ads, client, events } = await start();
    const c = client();
    c.subscribe(ENDPOINT_TYPE, [clusterName(0)]);
    const r1 = await c.next();
    ads.applyChanges({ upserts: [assignment(0, 1)], removals: [] });
    const r2 = await c.next();
    c.ack(r2);
    // An old nonce with a new subscription: the subscription counts.
    c.send({ type_url: ENDPOINT_TYPE, response_nonce: r1.nonce, resource_names_subscribe: [clusterName(3)] });
    const r3 = await c.next();
    assert.deepEqual(got(r3), [clusterName(3)]);
    await c.nothingWithin(30);
    const acks = events.flatMap((e) => (e.kind === 'ack' && e.typeUrl === ENDPOINT_TYPE ? [e.version] : []));
    assert.deepEqual(acks, [r2.system_version_info, r1.system_version_info], 'each response answered once, in any order');
  });

  it('serves server listeners from the callback by name, never through the wildcard', async () => {
    const { ads, client } = await start();
    const c = client();
    const name = serverListenerName('127.0.0.1', 50051);
    c.subscribe(LISTENER_TYPE, ['*', name]);
    const r = await c.next();
    assert.ok(got(r).includes(name));
    assert.equal(r.resources.length, 6);
    c.ack(r);
    const other = client('other');
    other.subscribe(LISTENER_TYPE, ['*']);
    const o = await other.next();
    assert.ok(!got(o).includes(name));
    // Re-evaluated with setResources; unchanged, so nothing is sent.
    ads.setResources(fleet(5));
    await c.nothingWithin(80);
  });

  it('shares the cache with SotW streams: one change, one encoding, both protocols served', async () => {
    const { ads, client, port } = await start();
    const d = client('delta');
    d.subscribe(ENDPOINT_TYPE, [clusterName(0)]);
    d.ack(await d.next());
    const s = new RawAdsClient(`127.0.0.1:${port}`, { id: 'sotw', cluster: 'test' });
    clients.push(s);
    s.send({ type_url: ENDPOINT_TYPE, resource_names: [clusterName(0)] });
    s.ack(await s.next(), [clusterName(0)]);
    const n = ads.stats().encodes;
    ads.applyChanges({ upserts: [assignment(0, 3)], removals: [] });
    assert.equal(ads.stats().encodes - n, 1);
    const [dr, sr] = await Promise.all([d.next(), s.next()]);
    assert.equal(dr.system_version_info, sr.version_info);
    assert.deepEqual(dr.resources[0]!.resource!.value, sr.resources[0]!.value);
    assert.deepEqual(
      ads
        .proxies()
        .map((p) => p.protocol)
        .sort(),
      ['delta', 'sotw'],
    );
    assert.deepEqual([ads.stats().deltaStreams, ads.stats().sotwStreams], [1, 1]);
    // Routes are untouched by all of this.
    assert.equal(ads.stats().typeVersions[ROUTE_TYPE], '1');
  });
});
