// EtcdStore against a real etcd (one process for the file): the Store contract
// (test/helpers/store-conformance.ts), then what etcd adds — two stores on one
// etcd (two hub replicas) see each other's writes and never lose an update;
// etcd down: commits fail within the deadline as 'unavailable', and work again
// once it is back; two hubs on one etcd (Hub.start) share one root, one set of
// API credentials and follow each other's revocations; and through the CLI, a
// hub's data directory migrated to etcd (meshfed store migrate), backed up from
// it and restored into a directory.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { fingerprint } from '../../src/ca/index.js';
import { apiFetch } from '../../src/cli/http.js';
import { Hub } from '../../src/hub/hub.js';
import { Etcd3 } from 'etcd3';
import { listOf } from '../../src/cli/output.js';
import { EtcdStore, type EtcdStoreOptions } from '../../src/store/etcd-store.js';
import { FileStore } from '../../src/store/file-store.js';
import { MeshfedError } from '../../src/util/errors.js';
import { API_VERSION, type ApiObject } from '../../src/api/index.js';
import { replaceClusterReport } from '../../src/hub/objects.js';
import type { WatchEvent } from '../../src/store/store.js';
import { DEMO_CLUSTERS, LocalFleet, clusterObject } from '../../src/demo/fleet.js';
import { runMeshfed } from '../helpers/cli.js';
import { startEtcd, type EtcdCluster } from '../helpers/etcd.js';
import { eventually } from '../helpers/eventually.js';
import { captureLogger, cluster, ref, storeConformance } from '../helpers/store-conformance.js';

let etcd: EtcdCluster;
before(async () => {
  etcd = await startEtcd();
});
after(async () => {
  await etcd?.stop();
});

function open(opts: Partial<EtcdStoreOptions> = {}): Promise<EtcdStore> {
  return EtcdStore.open({ endpoints: etcd.endpoints, prefix: `/t-${randomUUID()}`, logger: captureLogger(), probeIntervalMs: 100, ...opts });
}

storeConformance('EtcdStore', {
  open: (opts) => open(opts),
  async compact(store, revision) {
    const client = new Etcd3({ hosts: etcd.endpoints.map((e) => `http://${e}`) });
    try {
      await client.kv.compact({ revision: String(revision), physical: true });
    } finally {
      client.close();
    }
    await eventually('the store to notice the compaction', async () => {
      try {
        store.watch(revision - 3, () => {})();
        return undefined;
      } catch {
        return true;
      }
    });
  },
});

test('two stores on one etcd (two hub replicas): writes on one are seen by get, list and watch on the other', async () => {
  const prefix = `/t-${randomUUID()}`;
  const a = await open({ prefix });
  const b = await open({ prefix });
  try {
    const events: WatchEvent[] = [];
    b.watch(b.revision(), (e) => events.push(e));
    const r = await a.commit([{ type: 'put', object: cluster('shared') }]);
    const got = await eventually('b to see the write', async () => b.get(ref('shared')));
    assert.deepEqual(got, r.results[0]!.object);
    assert.equal(b.revision(), r.revision);
    assert.deepEqual(
      (await b.list({ kind: 'Cluster' })).map((o) => o.metadata.name),
      ['shared'],
    );
    assert.deepEqual(
      events.map((e) => [e.type, e.object.metadata.name, e.revision]),
      [['ADDED', 'shared', r.revision]],
    );
    // A third replica opening later replays the same history from etcd.
    const c = await open({ prefix });
    try {
      const replayed: string[] = [];
      const stop = c.watch(r.revision - 1, (e) => replayed.push(`${e.type}:${e.object.metadata.name}`));
      await eventually('replay from etcd', async () => (replayed.length > 0 ? true : undefined));
      stop();
      assert.deepEqual(replayed, ['ADDED:shared']);
    } finally {
      await c.close();
    }
  } finally {
    await a.close();
    await b.close();
  }
});

test('concurrent conflicting commits on two stores never lose an update', async () => {
  const prefix = `/t-${randomUUID()}`;
  const a = await open({ prefix });
  const b = await open({ prefix });
  try {
    await a.commit([{ type: 'put', object: cluster('hot') }]);
    await eventually('b to see it', async () => b.get(ref('hot')));
    const n = 15;
    // Each writer adds its own label on top of what it reads: a lost update would drop a label.
    const writer = async (s: EtcdStore, tag: string): Promise<void> => {
      for (let i = 0; i < n; i++) {
        for (;;) {
          const cur = (await s.get(ref('hot')))!;
          const next = { ...cur, metadata: { ...cur.metadata, labels: { ...cur.metadata.labels, [`${tag}${i}`]: 'x' } }, spec: { ...(cur.spec as object), round: `${tag}${i}` } };
          // Put what was read: the store compares with what its replica has, so a stale read is retried by the store
          // but must not erase the other writer's label; check after.
          await s.commit([{ type: 'put', object: next }]);
          const after = (await s.get(ref('hot')))!;
          if (after.metadata.labels?.[`${tag}${i}`] === 'x') break;
        }
      }
    };
    await Promise.all([writer(a, 'a'), writer(b, 'b')]);
    await eventually('both replicas at the same revision', async () => (a.revision() === b.revision() ? true : undefined));
    const final = (await a.get(ref('hot')))!;
    assert.deepEqual(await b.get(ref('hot')), final);
    assert.equal(final.metadata.resourceVersion, String(a.revision()));
    // Every commit changed spec: generation counts them all (1 for the create).
    assert.ok(final.metadata.generation! >= 2 * n + 1, `generation ${final.metadata.generation}`);
  } finally {
    await a.close();
    await b.close();
  }
});

test('read-modify-write with expect on two stores: every increment counts (the precondition holds across replicas)', async () => {
  const prefix = `/t-${randomUUID()}`;
  const a = await open({ prefix });
  const b = await open({ prefix });
  try {
    await a.commit([{ type: 'put', object: { ...cluster('counter'), status: { n: 0 } } }]);
    await eventually('b to see it', async () => b.get(ref('counter')));
    const n = 10;
    let conflicts = 0;
    const writer = async (s: EtcdStore): Promise<void> => {
      for (let i = 0; i < n; i++) {
        for (;;) {
          const cur = (await s.get(ref('counter')))!;
          const next = { ...cur, status: { n: (cur.status as { n: number }).n + 1 } };
          try {
            await s.commit([{ type: 'put', object: next, expect: { resourceVersion: cur.metadata.resourceVersion! } }]);
            break;
          } catch (err) {
            if (!(err instanceof MeshfedError && err.code === 'conflict')) throw err;
            conflicts++;
          }
        }
      }
    };
    await Promise.all([writer(a), writer(b)]);
    assert.deepEqual((await a.get(ref('counter')))!.status, { n: 2 * n }, `after ${conflicts} conflicts`);
  } finally {
    await a.close();
    await b.close();
  }
});

test('etcd stopped: a commit fails within its deadline as unavailable, naming etcd; back: writes work and the replica catches up', async () => {
  const s = await open({ timeoutMs: 1500 });
  const other = await open({ prefix: s.keys.root.slice(0, -1) });
  const member = etcd.members[0]!;
  try {
    await s.commit([{ type: 'put', object: cluster('before') }]);
    await member.stop();
    const t0 = Date.now();
    const err = await s.commit([{ type: 'put', object: cluster('during') }]).then(
      () => undefined,
      (e: unknown) => e,
    );
    const took = Date.now() - t0;
    assert.ok(err instanceof MeshfedError, `expected a MeshfedError, got ${String(err)}`);
    assert.equal(err.code, 'unavailable');
    assert.match(err.message, new RegExp(`etcd at http://${member.endpoint}`));
    assert.ok(took < 3000, `commit took ${took} ms`);
    assert.match(s.unavailable() ?? '', /etcd at .*unreachable/);

    await member.start();
    const r = await eventually('a commit to succeed again', () => s.commit([{ type: 'put', object: cluster('after') }]), 20_000, 200);
    // 'unchanged' when an earlier attempt timed out on our side but etcd took it: the outcome of a timed-out commit is unknown.
    assert.ok(['created', 'unchanged'].includes(r.results[0]!.outcome), r.results[0]!.outcome);
    await eventually('unavailable() to clear', async () => (s.unavailable() === undefined ? true : undefined), 10_000, 100);
    await eventually('the other replica to catch up', async () => other.get(ref('after')), 20_000, 100);
  } finally {
    if (!member.running()) await member.start();
    await s.close();
    await other.close();
  }
});

test('meshfed hub --store etcd://: serves apply and get, and keeps its objects in etcd across a restart', async () => {
  const prefix = `/hub-${randomUUID()}`;
  const fleet = await LocalFleet.create();
  try {
    const keyFile = join(fleet.dir, 'state.key');
    await writeFile(keyFile, randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
    const args = ['--store', `etcd://${etcd.endpoints.join(',')}${prefix}`, '--state-key-file', keyFile];
    await fleet.startHub(args);
    const applied = await fleet.apply([clusterObject(DEMO_CLUSTERS[0]!)]);
    assert.equal(applied.results[0]!.outcome, 'created');
    const name = DEMO_CLUSTERS[0]!.name;
    const get = async (): Promise<{ metadata: { name: string; uid: string } }> => {
      const r = await fleet.hubFetch(`/api/v1alpha1/clusters/${name}`);
      assert.equal(r.status, 200);
      return (await r.json()) as { metadata: { name: string; uid: string } };
    };
    const before = await get();
    await fleet.stopHub();
    // The object is in etcd, under the prefix given.
    const reader = await open({ prefix });
    try {
      assert.equal((await reader.get({ kind: 'Cluster', name }))?.metadata.uid, before.metadata.uid);
    } finally {
      await reader.close();
    }
    await fleet.startHub(args);
    assert.equal((await get()).metadata.uid, before.metadata.uid);
  } finally {
    await fleet.close();
  }
});

test('a lease: its key is readable while kept alive and gone once revoked', async () => {
  const s = await open();
  try {
    const lease = await s.lease(2000);
    await lease.put('hub-a', 'alive');
    const client = new Etcd3({ hosts: etcd.endpoints.map((e) => `http://${e}`) });
    try {
      const key = `${s.keys.root}leases/hub-a`;
      assert.equal(await client.get(key).string(), 'alive');
      await lease.revoke();
      assert.equal(await client.get(key).string(), null);
    } finally {
      client.close();
    }
    // Lease keys are not objects.
    assert.equal(await s.count(), 0);
  } finally {
    await s.close();
  }
});

test("a cluster's report bigger than etcd's 128 operations per transaction is stored whole, and a report that changes little compares only what it writes", async () => {
  const store = await open();
  try {
    const service = (i: number, port = 1): ApiObject => ({
      apiVersion: API_VERSION,
      kind: 'Service',
      metadata: { name: `s${i}`, namespace: 'big' },
      spec: { cluster: 'c1', ports: [{ name: 'grpc', port, protocol: 'GRPC' }], exported: true },
    });
    const report = Array.from({ length: 300 }, (_x, i) => service(i));
    // 300 objects: one transaction of 300 puts would be refused by this etcd (its defaults).
    await replaceClusterReport(store, 'c1', report);
    assert.equal(await store.count({ kind: 'Service', cluster: 'c1' }), 300);
    // The next full report changes one service and drops the last 100: the rest compare nothing.
    const next = report.slice(0, 200);
    next[7] = service(7, 2);
    await replaceClusterReport(store, 'c1', next);
    const left = await store.list({ kind: 'Service', cluster: 'c1' });
    assert.equal(left.length, 200);
    assert.equal((left.find((s) => s.metadata.name === 's7')!.spec as { ports: { port: number }[] }).ports[0]!.port, 2);
  } finally {
    await store.close();
  }
});

test('meshfed store migrate a stopped hub to etcd: a hub on it serves the same objects; backup from etcd beside the running hub, restore into a fresh directory: the same again', async () => {
  const fleet = await LocalFleet.create();
  const url = `etcd://${etcd.endpoints.join(',')}/mig-${randomUUID()}`;
  type Listed = { items: ApiObject[] };
  const identity = (l: Listed): unknown[] =>
    l.items.map((o) => [o.metadata.name, o.metadata.uid, o.metadata.creationTimestamp, o.metadata.generation, o.metadata.labels, o.spec]).sort((a, b) => String(a[0]).localeCompare(String(b[0])));
  try {
    await fleet.startHub();
    const env = fleet.cliEnv();
    const objects = DEMO_CLUSTERS.map((c) => ({ ...clusterObject(c), metadata: { name: c.name, labels: { tier: c.name } } }));
    const applied = await runMeshfed(['apply', '-f', '-'], env, stringifyYaml(listOf(objects)));
    assert.equal(applied.code, 0, applied.stderr);
    // An update: generation 2 must survive the copy.
    const updated = await runMeshfed(['apply', '-f', '-'], env, stringifyYaml({ ...objects[0]!, spec: { ...(objects[0]!.spec as object), zones: ['z-new'] } }));
    assert.equal(updated.code, 0, updated.stderr);
    const get = async (): Promise<Listed> => {
      const r = await runMeshfed(['get', 'clusters', '-o', 'json'], fleet.cliEnv());
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout) as Listed;
    };
    const before = await get();
    assert.equal(before.items.find((o) => o.metadata.name === objects[0]!.metadata.name)?.metadata.generation, 2);

    // The hub holds its directory: migrate refuses until it is stopped.
    const busy = await runMeshfed(['store', 'migrate', '--from', fleet.hubDataDir, '--to', url], {});
    assert.equal(busy.code, 5, busy.stderr);
    assert.match(busy.stderr, /Stop the hub first/);
    await fleet.stopHub();
    const m = await runMeshfed(['store', 'migrate', '--from', fleet.hubDataDir, '--to', url, '-o', 'json'], {});
    assert.equal(m.code, 0, m.stderr);
    const report = JSON.parse(m.stdout) as { verified: boolean; stores: { store: string; objects: number }[]; auditChain: { ok: boolean; records: number } };
    assert.equal(report.verified, true);
    assert.ok(report.auditChain.ok && report.auditChain.records > 0, JSON.stringify(report.auditChain));
    // Into a non-empty target: refused.
    const again = await runMeshfed(['store', 'migrate', '--from', fleet.hubDataDir, '--to', url], {});
    assert.equal(again.code, 5, again.stderr);

    // The migrated store holds the root key sealed with the data directory's state key: the hub on etcd needs that key.
    await fleet.startHub(['--store', url, '--state-key-file', join(fleet.hubDataDir, 'state.key')]);
    assert.deepEqual(identity(await get()), identity(before));
    const verify = await runMeshfed(['audit', 'verify'], fleet.cliEnv());
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);

    // etcd allows readers beside a running hub.
    const file = join(fleet.dir, 'hub.backup.jsonl.gz');
    const b = await runMeshfed(['backup', '--store', url, '-f', file], {});
    assert.equal(b.code, 0, b.stderr);
    await fleet.stopHub();
    const fresh = join(fleet.dir, 'restored');
    const r = await runMeshfed(['restore', '-f', file, '--store', fresh, '-o', 'json'], {});
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { verified: boolean }).verified, true);
    const restored = await FileStore.open(fresh, { logger: captureLogger() });
    try {
      assert.deepEqual(identity({ items: await restored.list({ kind: 'Cluster' }) }), identity(before));
    } finally {
      await restored.close();
    }
  } finally {
    await fleet.close();
  }
});

test('two hubs on one etcd with one state key share one root, and a token made at one works at the other until revoked', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'meshfed-ha-'));
  const keyFile = join(dir, 'state.key');
  await writeFile(keyFile, randomBytes(32).toString('base64') + '\n', { mode: 0o600 });
  const store = { kind: 'etcd' as const, endpoints: etcd.endpoints, prefix: `/ha-${randomUUID()}` };
  const start = (name: string, stateKeyFile?: string) =>
    Hub.start({ dataDir: join(dir, name), store, ...(stateKeyFile ? { stateKeyFile } : {}), api: { host: '127.0.0.1', port: 0 }, agents: { host: '127.0.0.1', port: 0 } });
  // Without the state key: refused, saying how to make one.
  await assert.rejects(
    start('c'),
    (e: Error) => e instanceof MeshfedError && e.code === 'usage' && /needs --state-key-file.*head -c 32 \/dev\/urandom \| base64 > state\.key.*every hub replica/.test(e.message),
  );
  // Both first-start at once: one makes the root and the admin credential, the other takes them.
  const hubs = await Promise.all([start('a', keyFile), start('b', keyFile)]);
  try {
    const [a, b] = hubs;
    assert.equal(fingerprint(a!.trust.bundlePem()), fingerprint(b!.trust.bundlePem()));
    const admins = ['a', 'b'].filter((n) => existsSync(join(dir, n, 'admin.meshfed.yaml')));
    assert.equal(admins.length, 1, 'exactly one hub wrote the admin credential');
    const config = parseYaml(await readFile(join(dir, admins[0]!, 'admin.meshfed.yaml'), 'utf8')) as { contexts: { token: string }[] };
    const ca = a!.trust.bundlePem();
    const call = (hub: Hub, path: string, token: string, init: { method?: string; body?: string } = {}) =>
      apiFetch(`https://127.0.0.1:${hub.apiAddress.port}${path}`, { ...init, headers: { 'content-type': 'application/json' } }, { ca, token });
    const made = await call(a!, '/api/v1alpha1/auth/tokens', config.contexts[0]!.token, { method: 'POST', body: JSON.stringify({ user: 'bob', groups: ['meshfed:admins'], ttl: '1h' }) });
    assert.equal(made.status, 201, await made.clone().text());
    const { token, id } = (await made.json()) as { token: string; id: string };
    assert.equal((await call(b!, '/api/v1alpha1/clusters', token)).status, 200);
    // The hub's internal kinds are not API resources.
    assert.equal((await call(b!, '/api/v1alpha1/hubtrusts', token)).status, 404);
    assert.equal((await call(b!, `/api/v1alpha1/auth/tokens/${id}`, token, { method: 'DELETE' })).status, 200);
    await eventually('the revocation at b to reach a', async () => ((await call(a!, '/api/v1alpha1/clusters', token)).status === 401 ? true : undefined), 10_000, 100);
  } finally {
    for (const h of hubs) await h.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
