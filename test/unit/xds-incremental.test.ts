// Incremental updates on the shared cache (applyChanges), coalescing, NACK
// handling and debug mode, driven by bare SotW ADS clients over loopback.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { AdsServer, type AdsEvent, type AdsServerOptions } from '../../src/xds/ads-server.js';
import { decodeResource } from '../../src/xds/proto.js';
import { contentHash } from '../../src/xds/cache/snapshot.js';
import { RawAdsClient, type RawResponse } from '../helpers/ads-client.js';
import { assignment, cluster, clusterName, fleet, svcName } from '../helpers/envoy-fleet.js';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, RESOURCE_TYPES, ROUTE_TYPE, type XdsResource } from '../../src/xdsapi/index.js';

function nameOf(typeUrl: string, value: Uint8Array): string {
  const m = decodeResource(typeUrl, value) as { name?: string; cluster_name?: string };
  return m.name ?? m.cluster_name ?? '';
}
const names = (r: RawResponse): string[] => r.resources.map((a) => nameOf(a.type_url, a.value));
/** First endpoint address of an assignment in a response (tells generations apart). */
function firstAddress(r: RawResponse, i = 0): string {
  const m = decodeResource(ENDPOINT_TYPE, r.resources[i]!.value) as { endpoints: { lb_endpoints: { endpoint: { address: { socket_address: { address: string } } } }[] }[] };
  return m.endpoints[0]!.lb_endpoints[0]!.endpoint.address.socket_address.address;
}

describe('AdsServer incremental updates (state of the world)', () => {
  const clients: RawAdsClient[] = [];
  const servers: AdsServer[] = [];
  const start = async (opts: AdsServerOptions = {}) => {
    const events: AdsEvent[] = [];
    const ads = new AdsServer({ ...opts, onEvent: (e) => events.push(e) });
    servers.push(ads);
    const port = await ads.listen();
    const client = (id: string): RawAdsClient => {
      const c = new RawAdsClient(`127.0.0.1:${port}`, { id, cluster: 'test', locality: { region: 'r', zone: 'z' } });
      clients.push(c);
      return c;
    };
    return { ads, client, events };
  };
  /** Subscribes and ACKs the answer. */
  const sub = async (c: RawAdsClient, typeUrl: string, resourceNames: string[]): Promise<RawResponse> => {
    c.send({ type_url: typeUrl, resource_names: resourceNames });
    const r = await c.next();
    assert.equal(r.type_url, typeUrl);
    c.ack(r, resourceNames);
    return r;
  };
  after(async () => {
    for (const c of clients) c.close();
    await Promise.all(servers.map((s) => s.close()));
  });

  it('pushes a changed assignment only to its subscribers, encoded once; listeners and clusters are not resent', async () => {
    const { ads, client, events } = await start();
    ads.setResources(fleet(10));
    const a = client('a');
    const b = client('b');
    const chain = client('chain');
    const envoy = client('envoy');
    await sub(a, ENDPOINT_TYPE, [clusterName(0)]);
    await sub(b, ENDPOINT_TYPE, [clusterName(1)]);
    await sub(chain, LISTENER_TYPE, [svcName(0)]);
    await sub(chain, ROUTE_TYPE, [svcName(0)]);
    await sub(chain, CLUSTER_TYPE, [clusterName(0)]);
    await sub(chain, ENDPOINT_TYPE, [clusterName(0)]);
    const l = await sub(envoy, LISTENER_TYPE, []); // wildcard
    assert.equal(l.resources.length, 10);
    assert.equal((await sub(envoy, CLUSTER_TYPE, [])).resources.length, 10);
    await sub(envoy, ENDPOINT_TYPE, [clusterName(0), clusterName(1)]);
    await Promise.all([a, b, chain, envoy].map((c) => c.nothingWithin(50)));

    const before = ads.stats();
    const mark = events.length;
    ads.applyChanges({ upserts: [assignment(0, 1)], removals: [] });
    const after = ads.stats();
    assert.equal(after.encodes - before.encodes, 1, 'only the changed assignment is encoded');
    for (const t of [LISTENER_TYPE, ROUTE_TYPE, CLUSTER_TYPE]) assert.equal(after.typeVersions[t], before.typeVersions[t], `${t} version unchanged`);
    assert.notEqual(after.typeVersions[ENDPOINT_TYPE], before.typeVersions[ENDPOINT_TYPE]);
    for (const c of [a, chain, envoy]) {
      const r = await c.next();
      assert.equal(r.type_url, ENDPOINT_TYPE);
      assert.deepEqual(names(r), [clusterName(0)], 'only the changed assignment, even for a client subscribed to two');
      assert.equal(r.version_info, after.typeVersions[ENDPOINT_TYPE]);
      assert.equal(firstAddress(r), '10.0.0.1');
    }
    await Promise.all([a, b, chain, envoy].map((c) => c.nothingWithin(100)));
    const sends = events.slice(mark).filter((e) => e.kind === 'send');
    assert.deepEqual(sends.map((e) => (e.kind === 'send' ? `${e.nodeId} ${e.typeUrl === ENDPOINT_TYPE ? 'EDS' : e.typeUrl}` : '')).sort(), ['a EDS', 'chain EDS', 'envoy EDS']);
  });

  it('sends nothing for an unchanged upsert; a removed cluster leaves the full CDS state to its subscribers', async () => {
    const { ads, client } = await start();
    ads.setResources(fleet(5));
    const envoy = client('envoy');
    const named = client('named');
    const other = client('other');
    await sub(envoy, CLUSTER_TYPE, []);
    await sub(named, CLUSTER_TYPE, [clusterName(0), clusterName(1)]);
    await sub(other, CLUSTER_TYPE, [clusterName(3)]);
    const s0 = ads.stats();
    ads.applyChanges({ upserts: [assignment(2, 0), cluster(1)], removals: [] });
    assert.equal(ads.stats().encodes, s0.encodes);
    assert.equal(ads.stats().pushes, s0.pushes);
    await Promise.all([envoy, named, other].map((c) => c.nothingWithin(80)));

    ads.applyChanges({ upserts: [], removals: [{ typeUrl: CLUSTER_TYPE, name: clusterName(1) }] });
    const e = await envoy.next();
    assert.deepEqual(names(e).sort(), [0, 2, 3, 4].map(clusterName).sort(), 'wildcard: everything left');
    const n = await named.next();
    assert.deepEqual(names(n), [clusterName(0)], 'named: the subscribed ones left (missing = deleted)');
    await other.nothingWithin(80);
    assert.equal(ads.currentSnapshot()!.get(CLUSTER_TYPE, clusterName(1)), undefined);
  });

  it('setResources diffs against the current state and goes the same way', async () => {
    const { ads, client } = await start();
    ads.setResources(fleet(20));
    const c3 = client('c3');
    const c4 = client('c4');
    await sub(c3, ENDPOINT_TYPE, [clusterName(3)]);
    await sub(c4, ENDPOINT_TYPE, [clusterName(4)]);
    const encodes = ads.stats().encodes;
    const next = fleet(20);
    next.endpoints.set(clusterName(3), assignment(3, 7));
    ads.setResources(next);
    assert.equal(ads.stats().encodes - encodes, 1);
    assert.equal(firstAddress(await c3.next()), '10.0.3.7');
    await c4.nothingWithin(80);
    // Leaving a resource out of the full set removes it.
    next.endpoints.delete(clusterName(4));
    ads.setResources(next);
    assert.equal(ads.currentSnapshot()!.get(ENDPOINT_TYPE, clusterName(4)), undefined);
    assert.equal(ads.stats().resources[ENDPOINT_TYPE], 19);
  });

  it('coalesces changes within the debounce window into one push: the last upsert wins, a later removal wins', async () => {
    const { ads, client } = await start({ debounceMs: 40, maxDelayMs: 1000 });
    ads.setResources(fleet(4)); // the first complete state is installed at once
    const c = client('c');
    await sub(c, CLUSTER_TYPE, [clusterName(0), clusterName(1)]);
    await sub(c, ENDPOINT_TYPE, [clusterName(0)]);
    const s0 = ads.stats();
    ads.applyChanges({ upserts: [assignment(0, 1)], removals: [] });
    ads.applyChanges({ upserts: [assignment(0, 2)], removals: [] });
    const changed = cluster(1);
    changed.message = { ...changed.message, lb_policy: 'RING_HASH' };
    ads.applyChanges({ upserts: [changed], removals: [] });
    ads.applyChanges({ upserts: [], removals: [{ typeUrl: CLUSTER_TYPE, name: clusterName(1) }] });
    assert.equal(ads.stats().pendingNames, 2);
    await c.nothingWithin(20);
    const got = [await c.next(), await c.next()];
    // Clusters before endpoints (make before break).
    assert.deepEqual(
      got.map((r) => r.type_url),
      [CLUSTER_TYPE, ENDPOINT_TYPE],
    );
    assert.deepEqual(names(got[0]!), [clusterName(0)]);
    assert.equal(firstAddress(got[1]!), '10.0.0.2', 'the last upsert wins');
    await c.nothingWithin(80);
    const s1 = ads.stats();
    assert.equal(s1.changesReceived - s0.changesReceived, 4);
    assert.equal(s1.changesCoalesced - s0.changesCoalesced, 3);
    assert.equal(s1.pushes - s0.pushes, 1);
    assert.equal(s1.pendingNames, 0);
    c.ack(got[1]!, [clusterName(0)]);
    // flush() pushes without waiting for the window.
    ads.applyChanges({ upserts: [assignment(0, 3)], removals: [] });
    ads.flush();
    assert.equal(firstAddress(await c.next(30)), '10.0.0.3');
  });

  it('never holds a change longer than maxDelayMs, however busy', async () => {
    const { ads, client } = await start({ debounceMs: 30, maxDelayMs: 100 });
    ads.setResources(fleet(2));
    const c = client('c');
    await sub(c, ENDPOINT_TYPE, [clusterName(0)]);
    const t0 = performance.now();
    let gen = 0;
    // A change every 10 ms: the debounce alone would never fire.
    const timer = setInterval(() => ads.applyChanges({ upserts: [assignment(0, ++gen)], removals: [] }), 10);
    ads.applyChanges({ upserts: [assignment(0, ++gen)], removals: [] });
    try {
      const r1 = await c.next(1000);
      const first = performance.now() - t0;
      c.ack(r1, [clusterName(0)]);
      const r2 = await c.next(1000);
      const second = performance.now() - t0;
      assert.ok(first >= 90 && first < 180, `first push after ${first.toFixed(0)} ms`);
      assert.ok(second - first < 180, `second push ${(second - first).toFixed(0)} ms later`);
      assert.notEqual(firstAddress(r1), firstAddress(r2));
    } finally {
      clearInterval(timer);
    }
  });

  it('after a NACK keeps the last good version, records the message, does not resend the same content; sends the next change', async () => {
    const { ads, client } = await start();
    ads.setResources(fleet(2));
    const c = client('c');
    const r1 = await sub(c, ENDPOINT_TYPE, [clusterName(0)]);
    await c.nothingWithin(30);
    ads.applyChanges({ upserts: [assignment(0, 1)], removals: [] });
    const r2 = await c.next();
    c.send({ type_url: ENDPOINT_TYPE, resource_names: [clusterName(0)], response_nonce: r2.nonce, version_info: r1.version_info, error_detail: { code: 3, message: 'bad endpoints' } });
    await c.nothingWithin(50);
    const p = ads.proxies().find((x) => x.nodeId === 'c')!;
    assert.equal(p.protocol, 'sotw');
    const st = p.types[ENDPOINT_TYPE]!;
    assert.equal(st.ackedVersion, r1.version_info);
    assert.equal(st.lastSentVersion, r2.version_info);
    assert.deepEqual([st.lastNack?.version, st.lastNack?.message], [r2.version_info, 'bad endpoints']);
    // Restating the rejected content changes nothing; a new one goes out.
    ads.applyChanges({ upserts: [assignment(0, 1)], removals: [] });
    ads.setResources({
      ...fleet(2),
      endpoints: new Map([
        [clusterName(0), assignment(0, 1)],
        [clusterName(1), assignment(1)],
      ]),
    });
    await c.nothingWithin(80);
    ads.applyChanges({ upserts: [assignment(0, 2)], removals: [] });
    const r3 = await c.next();
    assert.equal(firstAddress(r3), '10.0.0.2');
    c.ack(r3, [clusterName(0)]);
    await c.nothingWithin(30);
    assert.equal(ads.proxies().find((x) => x.nodeId === 'c')!.types[ENDPOINT_TYPE]!.ackedVersion, r3.version_info);
  });

  it('answers nothing after applyChanges alone; markReady sends the pending state', async () => {
    const { ads, client } = await start({ debounceMs: 50 });
    const c = client('c');
    c.send({ type_url: LISTENER_TYPE, resource_names: [svcName(0)] });
    const all = fleet(3);
    ads.applyChanges({
      upserts: RESOURCE_TYPES.flatMap((t) => [...(t === LISTENER_TYPE ? all.listeners : t === ROUTE_TYPE ? all.routes : t === CLUSTER_TYPE ? all.clusters : all.endpoints).values()]),
      removals: [],
    });
    ads.flush();
    await c.nothingWithin(80);
    assert.equal(ads.ready, false);
    assert.equal(ads.proxies()[0]!.types[LISTENER_TYPE]!.lastSentVersion, undefined);
    ads.markReady();
    const r = await c.next();
    assert.deepEqual(names(r), [svcName(0)]);
    assert.equal(r.version_info, ads.version);
  });

  it('rejects an invalid change before anything moves', async () => {
    const ads = new AdsServer();
    servers.push(ads);
    ads.setResources(fleet(2));
    const v = ads.version;
    const bad = cluster(7);
    bad.message = { ...bad.message, lbPolicy: 'ROUND_ROBIN' };
    assert.throws(() => ads.applyChanges({ upserts: [assignment(5), bad], removals: [] }), /lbPolicy: unknown field/);
    assert.throws(() => ads.applyChanges({ upserts: [], removals: [{ typeUrl: 'type.googleapis.com/nope', name: 'x' }] }), /unknown xDS resource type/);
    assert.equal(ads.version, v);
    assert.equal(ads.stats().pendingNames, 0);
    assert.equal(ads.currentSnapshot()!.get(ENDPOINT_TYPE, clusterName(5)), undefined);
  });
});

describe('AdsServer debug mode', () => {
  const withPanic = (value: number): XdsResource => {
    const c = cluster(0);
    c.message = { ...c.message, common_lb_config: { healthy_panic_threshold: { value } } };
    return c;
  };

  it('throws when one name gets two different contents within one change, naming it and both hashes', () => {
    const ads = new AdsServer({ debug: true });
    ads.setResources(fleet(1));
    const v = ads.version;
    assert.throws(
      () => ads.applyChanges({ upserts: [assignment(0, 1), assignment(0, 2)], removals: [] }),
      (err: Error) => /xDS debug: ClusterLoadAssignment "outbound\|8080\|\|svc-0\.ns" .*hash (\S+) vs (\S+)\)/.test(err.message),
    );
    assert.equal(ads.version, v, 'nothing applied');
    // The same content twice is fine; without debug mode the last one wins.
    ads.applyChanges({ upserts: [assignment(0, 1), assignment(0, 1)], removals: [] });
    const lax = new AdsServer({ debug: false });
    lax.setResources(fleet(1));
    lax.applyChanges({ upserts: [assignment(0, 1), assignment(0, 2)], removals: [] });
    assert.equal(lax.currentSnapshot()!.get(ENDPOINT_TYPE, clusterName(0))!.hash, contentHash(assignment(0, 2)));
  });

  it('throws when a content hash stands for different bytes (cached bytes would go stale)', () => {
    // 0 and -0 hash alike (JSON has no -0) but a double field encodes them differently.
    const ads = new AdsServer({ debug: true });
    ads.setResources(fleet(1));
    ads.applyChanges({ upserts: [withPanic(0)], removals: [] });
    assert.throws(
      () => ads.applyChanges({ upserts: [withPanic(-0)], removals: [] }),
      /xDS debug: Cluster "outbound\|8080\|\|svc-0\.ns": content hash \S+ is cached with bytes \S+ but the same content now encodes to bytes \S+/,
    );
    // Without debug mode the cached bytes are kept silently: the hazard debug mode exists for.
    const lax = new AdsServer({ debug: false });
    lax.setResources(fleet(1));
    lax.applyChanges({ upserts: [withPanic(0)], removals: [] });
    const n = lax.stats().encodes;
    lax.applyChanges({ upserts: [withPanic(-0)], removals: [] });
    assert.equal(lax.stats().encodes, n);
  });

  it('is switched on by MESHFED_XDS_DEBUG=1', () => {
    const prev = process.env.MESHFED_XDS_DEBUG;
    process.env.MESHFED_XDS_DEBUG = '1';
    try {
      const ads = new AdsServer();
      ads.setResources(fleet(1));
      assert.throws(() => ads.applyChanges({ upserts: [assignment(0, 1), assignment(0, 2)], removals: [] }), /xDS debug/);
    } finally {
      if (prev === undefined) delete process.env.MESHFED_XDS_DEBUG;
      else process.env.MESHFED_XDS_DEBUG = prev;
    }
  });
});
