// The Store contract, as tests any store must pass (FileStore in
// test/unit/store.test.ts, EtcdStore in test/e2e/etcd-store.test.ts): outcomes
// and store-managed metadata, multi-op all-or-nothing commits, watch replay then
// live, the compacted-revision error, list filters, close. Revisions are
// asserted relative to the store's revision when a test starts (etcd's is
// global), so each test gets a fresh, empty store from the factory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clusterOf, type ApiObject } from '../../src/api/meta.js';
import type { StoreLogger } from '../../src/store/file-store.js';
import { isRevisionCompacted, RevisionCompactedError, type Store, type WatchEvent } from '../../src/store/store.js';
import { MeshfedError } from '../../src/util/errors.js';
import { eventually } from './eventually.js';

export interface ConformanceTarget {
  /** A fresh, empty store. */
  open(opts?: { historyLimit?: number; logger?: StoreLogger }): Promise<Store>;
  /**
   * Makes history before `revision` unavailable and resolves once the store
   * says so (FileStore: nothing to do, its history limit already did).
   */
  compact?(store: Store, revision: number): Promise<void>;
}

export function captureLogger(): StoreLogger & { lines: string[] } {
  const lines: string[] = [];
  return { lines, warn: (m) => lines.push(`warn ${m}`), error: (m, e) => lines.push(`error ${m} ${e instanceof Error ? e.message : ''}`) };
}

export function cluster(name: string, region = 'r', extra: Partial<ApiObject> = {}): ApiObject {
  return {
    apiVersion: 'meshfed.io/v1alpha1',
    kind: 'Cluster',
    metadata: { name },
    spec: { region, zones: ['z'], network: 'default' },
    ...extra,
  };
}

export function service(name: string, clusterName: string, namespace: string): ApiObject {
  return {
    apiVersion: 'meshfed.io/v1alpha1',
    kind: 'Service',
    metadata: { name, namespace },
    spec: { cluster: clusterName, ports: [{ port: 80 }] },
  };
}

export const ref = (name: string): { kind: string; name: string } => ({ kind: 'Cluster', name });

async function withStore(target: ConformanceTarget, opts: Parameters<ConformanceTarget['open']>[0], fn: (s: Store, base: number) => Promise<void>): Promise<void> {
  const s = await target.open(opts);
  try {
    await fn(s, s.revision());
  } finally {
    await s.close();
  }
}

/** Registers the contract's tests for `target`, each name prefixed with `label`. */
export function storeConformance(label: string, target: ConformanceTarget): void {
  test(`${label}: outcomes and store-managed metadata`, () =>
    withStore(target, {}, async (s, base) => {
      const c1 = cluster('c1');
      const r1 = await s.commit([{ type: 'put', object: c1 }]);
      assert.equal(r1.revision, base + 1);
      assert.equal(s.revision(), base + 1);
      assert.equal(r1.results[0]!.outcome, 'created');
      const created = r1.results[0]!.object!;
      assert.match(created.metadata.uid!, /^[0-9a-f-]{36}$/);
      assert.ok(!Number.isNaN(Date.parse(created.metadata.creationTimestamp!)));
      assert.equal(created.metadata.generation, 1);
      assert.equal(created.metadata.resourceVersion, String(base + 1));
      assert.equal(c1.metadata.uid, undefined, 'caller object is not modified');
      assert.deepEqual(await s.get(ref('c1')), created);

      // Same content, different key order, bogus store fields: unchanged, no new revision.
      const again: ApiObject = {
        apiVersion: 'meshfed.io/v1alpha1',
        kind: 'Cluster',
        metadata: { name: 'c1', uid: 'bogus', resourceVersion: '99', generation: 7 },
        spec: { network: 'default', zones: ['z'], region: 'r' },
      };
      const r2 = await s.commit([{ type: 'put', object: again }]);
      assert.equal(r2.revision, base + 1);
      assert.equal(r2.results[0]!.outcome, 'unchanged');
      assert.deepEqual(r2.results[0]!.object, created);

      // Label change: configured, generation kept; supplied uid/creationTimestamp ignored.
      const labelled = cluster('c1');
      labelled.metadata.labels = { tier: 'gold' };
      labelled.metadata.uid = 'bogus';
      labelled.metadata.creationTimestamp = '1999-01-01T00:00:00Z';
      const r3 = await s.commit([{ type: 'put', object: labelled }]);
      assert.equal(r3.revision, base + 2);
      const configured = r3.results[0]!.object!;
      assert.equal(r3.results[0]!.outcome, 'configured');
      assert.equal(configured.metadata.uid, created.metadata.uid);
      assert.equal(configured.metadata.creationTimestamp, created.metadata.creationTimestamp);
      assert.equal(configured.metadata.generation, 1);
      assert.equal(configured.metadata.resourceVersion, String(base + 2));

      // Spec change bumps generation; status change does not.
      const moved = cluster('c1', 'r2');
      moved.metadata.labels = { tier: 'gold' };
      const r4 = await s.commit([{ type: 'put', object: moved }]);
      assert.equal(r4.results[0]!.outcome, 'configured');
      assert.equal(r4.results[0]!.object!.metadata.generation, 2);
      const withStatus = { ...moved, status: { services: 3 } };
      const r5 = await s.commit([{ type: 'put', object: withStatus }]);
      assert.equal(r5.results[0]!.outcome, 'configured');
      assert.equal(r5.results[0]!.object!.metadata.generation, 2);
      assert.equal(r5.revision, base + 4);

      // Copies in and out: mutating either side does not reach the store.
      withStatus.spec = { region: 'mutated' };
      r5.results[0]!.object!.metadata.labels!.tier = 'mutated';
      const got = await s.get(ref('c1'));
      assert.deepEqual(got?.spec, { region: 'r2', zones: ['z'], network: 'default' });
      assert.deepEqual(got?.metadata.labels, { tier: 'gold' });
      assert.equal(got?.metadata.resourceVersion, String(base + 4));
      got!.spec = 'mutated';
      assert.equal(((await s.get(ref('c1')))!.spec as { region: string }).region, 'r2');

      const r6 = await s.commit([{ type: 'delete', ref: ref('c1') }]);
      assert.deepEqual(r6, { revision: base + 5, results: [{ outcome: 'deleted' }] });
      assert.equal(await s.get(ref('c1')), undefined);
      const r7 = await s.commit([{ type: 'delete', ref: ref('c1') }]);
      assert.deepEqual(r7, { revision: base + 5, results: [{ outcome: 'not-found' }] });
      assert.equal(s.revision(), base + 5);

      // Re-creating after delete gets a new identity.
      const r8 = await s.commit([{ type: 'put', object: cluster('c1') }]);
      assert.equal(r8.results[0]!.outcome, 'created');
      assert.notEqual(r8.results[0]!.object!.metadata.uid, created.metadata.uid);
    }));

  test(`${label}: a put's precondition (expect) fails the whole commit with a conflict naming the object and both versions`, () =>
    withStore(target, {}, async (s, base) => {
      const conflict = (re: RegExp) => (e: unknown) => e instanceof MeshfedError && e.code === 'conflict' && re.test(e.message);
      const created = (await s.commit([{ type: 'put', object: cluster('c1'), expect: 'absent' }])).results[0]!;
      assert.equal(created.outcome, 'created');
      const rv = created.object!.metadata.resourceVersion!;
      await assert.rejects(
        s.commit([{ type: 'put', object: cluster('c1', 'r2'), expect: 'absent' }]),
        conflict(new RegExp(`^Cluster c1: expected it not to exist, but it is stored at resourceVersion ${rv}$`)),
      );
      const moved = await s.commit([{ type: 'put', object: cluster('c1', 'r2'), expect: { resourceVersion: rv } }]);
      assert.equal(moved.results[0]!.outcome, 'configured');
      const rv2 = moved.results[0]!.object!.metadata.resourceVersion!;
      // A stale version fails even a put that would change nothing, and takes the commit's other ops with it.
      await assert.rejects(
        s.commit([
          { type: 'put', object: cluster('other') },
          { type: 'put', object: cluster('c1', 'r2'), expect: { resourceVersion: rv } },
        ]),
        conflict(new RegExp(`^Cluster c1: expected resourceVersion ${rv}, but it is stored at resourceVersion ${rv2}$`)),
      );
      assert.equal(await s.get(ref('other')), undefined);
      assert.equal(s.revision(), base + 2);
      await assert.rejects(
        s.commit([{ type: 'put', object: cluster('c9'), expect: { resourceVersion: rv } }]),
        conflict(new RegExp(`^Cluster c9: expected resourceVersion ${rv}, but it does not exist$`)),
      );
      await assert.rejects(s.commit([{ type: 'put', object: cluster('c9'), expect: { resourceVersion: 7 } as unknown as { resourceVersion: string } }]), TypeError);

      // Read-modify-write with expect, concurrently: retried on conflict, no update is lost.
      const counter = (n: number): ApiObject => ({ ...cluster('counter'), status: { n } });
      await s.commit([{ type: 'put', object: counter(0) }]);
      const increment = async (): Promise<void> => {
        for (;;) {
          const cur = (await s.get(ref('counter')))!;
          const n = (cur.status as { n: number }).n;
          try {
            await s.commit([{ type: 'put', object: counter(n + 1), expect: { resourceVersion: cur.metadata.resourceVersion! } }]);
            return;
          } catch (err) {
            if (!(err instanceof MeshfedError && err.code === 'conflict')) throw err;
          }
        }
      };
      await Promise.all(Array.from({ length: 10 }, increment));
      assert.deepEqual((await s.get(ref('counter')))!.status, { n: 10 });
    }));

  test(`${label}: a multi-op commit is one revision, sees its own earlier ops, and is all-or-nothing`, () =>
    withStore(target, {}, async (s, base) => {
      await s.commit([{ type: 'put', object: cluster('old') }]);
      const r = await s.commit([
        { type: 'put', object: cluster('a') },
        { type: 'put', object: cluster('b') },
        { type: 'delete', ref: ref('old') },
        { type: 'delete', ref: ref('missing') },
        { type: 'put', object: cluster('tmp') },
        { type: 'delete', ref: ref('tmp') },
        { type: 'put', object: cluster('a', 'r9') },
      ]);
      assert.equal(r.revision, base + 2);
      assert.deepEqual(
        r.results.map((x) => x.outcome),
        ['created', 'created', 'deleted', 'not-found', 'created', 'deleted', 'configured'],
      );
      assert.equal(r.results[6]!.object!.metadata.generation, 2);
      assert.equal(r.results[6]!.object!.metadata.uid, r.results[0]!.object!.metadata.uid);
      const rv = String(base + 2);
      assert.deepEqual(
        (await s.list()).map((o) => [o.metadata.name, o.metadata.resourceVersion, (o.spec as { region: string }).region]),
        [
          ['a', rv, 'r9'],
          ['b', rv, 'r'],
        ],
      );

      // An invalid op rejects the whole commit, including the valid ops before it.
      await assert.rejects(
        s.commit([
          { type: 'put', object: cluster('c') },
          { type: 'put', object: { kind: 'Cluster', metadata: {} } as unknown as ApiObject },
        ]),
        TypeError,
      );
      assert.equal(s.revision(), base + 2);
      assert.equal(await s.get(ref('c')), undefined);
    }));

  test(`${label}: watch replays history in order, then streams live events by the time the commit resolves`, async () => {
    const logger = captureLogger();
    await withStore(target, { logger }, async (s, base) => {
      await s.commit([{ type: 'put', object: cluster('a') }]);
      await s.commit([{ type: 'put', object: cluster('b') }]);
      await s.commit([{ type: 'put', object: cluster('a', 'r2') }]);

      const seen: WatchEvent[] = [];
      const stop = s.watch(base + 1, (e) => seen.push(e));
      const thrower = s.watch(base + 1, () => {
        throw new Error('listener bug');
      });
      const all: string[] = [];
      const stopAll = s.watch(base, (e) => all.push(`${e.revision - base}:${e.type}:${e.object.metadata.name}`));
      await new Promise((r) => setImmediate(r));
      assert.deepEqual(
        seen.map((e) => [e.revision - base, e.type, e.object.metadata.name]),
        [
          [2, 'ADDED', 'b'],
          [3, 'MODIFIED', 'a'],
        ],
      );

      const r = await s.commit([
        { type: 'delete', ref: ref('b') },
        { type: 'put', object: cluster('c') },
      ]);
      assert.equal(r.revision, base + 4);
      assert.equal(seen.length, 4, 'live events are delivered by the time the commit resolves');
      assert.deepEqual(
        seen.slice(2).map((e) => [e.revision - base, e.type, e.object.metadata.name, e.object.metadata.resourceVersion]),
        [
          [4, 'DELETED', 'b', String(base + 4)],
          [4, 'ADDED', 'c', String(base + 4)],
        ],
      );
      assert.ok(
        logger.lines.some((l) => l.includes('listener bug')),
        'listener error is reported',
      );

      // Events are copies: a listener mutating one does not affect others or the store.
      seen[3]!.object.metadata.name = 'mutated';
      assert.ok(all.includes('4:ADDED:c'));
      assert.equal((await s.get(ref('c')))!.metadata.name, 'c');

      // No event for an unchanged put; none after unsubscribe.
      await s.commit([{ type: 'put', object: cluster('c') }]);
      stop();
      thrower();
      await s.commit([{ type: 'put', object: cluster('d') }]);
      assert.equal(seen.length, 4);
      assert.deepEqual(all, ['1:ADDED:a', '2:ADDED:b', '3:MODIFIED:a', '4:DELETED:b', '4:ADDED:c', '5:ADDED:d']);
      stopAll();

      // Watching from a future revision delivers only events after it.
      const future: number[] = [];
      s.watch(base + 6, (e) => future.push(e.revision - base));
      await s.commit([{ type: 'put', object: cluster('e') }]);
      await s.commit([{ type: 'put', object: cluster('f') }]);
      assert.deepEqual(future, [7]);
    });
  });

  test(`${label}: watch from a compacted revision throws RevisionCompactedError (gone, 410, reason RevisionCompacted)`, () =>
    withStore(target, { historyLimit: 1 }, async (s, base) => {
      for (let i = 0; i < 3; i++) await s.commit([{ type: 'put', object: cluster(`c${i}`) }]);
      await target.compact?.(s, base + 3);
      let caught: unknown;
      try {
        s.watch(base, () => {});
      } catch (err) {
        caught = err;
      }
      assert.ok(caught instanceof RevisionCompactedError, `expected a RevisionCompactedError, got ${String(caught)}`);
      assert.ok(caught instanceof MeshfedError);
      assert.equal(caught.code, 'gone');
      assert.equal(caught.httpStatus, 410);
      assert.equal(caught.reason, 'RevisionCompacted');
      assert.equal(caught.requested, base);
      assert.equal(caught.oldest, base + 2);
      assert.equal(caught.message, `revision ${base} is compacted; oldest available is ${base + 2}: list again`);
      assert.deepEqual(caught.details, { requested: base, oldest: base + 2 });
      assert.ok(isRevisionCompacted(caught));
      assert.ok(!isRevisionCompacted(new MeshfedError('gone', 'x')));
      // Other watch errors are not it.
      assert.throws(
        () => s.watch(-1, () => {}),
        (err: unknown) => err instanceof RangeError && !isRevisionCompacted(err),
      );
      // The oldest available revision still works.
      const got: number[] = [];
      const stop = s.watch(base + 2, (e) => got.push(e.revision - base));
      await eventually('the event after the oldest revision', async () => (got.length > 0 ? true : undefined), 5000, 20);
      stop();
      assert.deepEqual(got, [3]);
    }));

  test(`${label}: list filters by kind, namespace and cluster, sorted by key`, () =>
    withStore(target, {}, async (s) => {
      await s.commit([
        { type: 'put', object: service('web', 'east', 'shop') },
        { type: 'put', object: service('api', 'west', 'shop') },
        { type: 'put', object: service('db', 'east', 'data') },
        { type: 'put', object: cluster('west') },
        { type: 'put', object: cluster('east') },
      ]);
      const names = (objs: readonly ApiObject[]): string[] => objs.map((o) => `${o.kind}/${clusterOf(o) ?? ''}/${o.metadata.name}`);
      assert.deepEqual(names(await s.list()), ['Cluster//east', 'Cluster//west', 'Service/east/db', 'Service/east/web', 'Service/west/api']);
      assert.deepEqual(names(await s.list({ kind: 'Cluster' })), ['Cluster//east', 'Cluster//west']);
      assert.deepEqual(names(await s.list({ kind: 'Service', namespace: 'shop' })), ['Service/east/web', 'Service/west/api']);
      assert.deepEqual(names(await s.list({ cluster: 'east' })), ['Service/east/db', 'Service/east/web']);
      assert.deepEqual(names(await s.list({ kind: 'Service', cluster: 'east', namespace: 'data' })), ['Service/east/db']);
      assert.deepEqual(await s.list({ kind: 'Mesh' }), []);
      assert.deepEqual(names(s.scan({ kind: 'Service', cluster: 'east' }).objects).sort(), ['Service/east/db', 'Service/east/web']);
      assert.equal(s.scan().revision, s.revision());
      assert.equal(await s.count({ kind: 'Service' }), 3);
      assert.equal(await s.count({ kind: 'Service', cluster: 'east' }), 2);
      assert.equal(await s.count({ namespace: 'shop' }), 2);
      assert.equal((await s.get({ kind: 'Service', name: 'db', namespace: 'data', cluster: 'east' }))!.metadata.name, 'db');
      assert.equal(await s.get({ kind: 'Service', name: 'db', namespace: 'data' }), undefined);
    }));

  test(`${label}: close waits for in-flight commits and then rejects new ones`, async () => {
    const s = await target.open();
    const base = s.revision();
    assert.equal(s.unavailable(), undefined);
    const pending = Array.from({ length: 10 }, (_, i) => s.commit([{ type: 'put', object: cluster(`c${i}`) }]));
    const closed = s.close();
    await assert.rejects(s.commit([{ type: 'put', object: cluster('late') }]), /closed/);
    const results = await Promise.all(pending);
    await closed;
    assert.deepEqual(
      results.map((r) => r.revision - base),
      [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
      'commits take revisions in call order',
    );
    assert.match(s.unavailable() ?? '', /closed/);
    assert.throws(() => s.scan(), /closed/);
  });
}
