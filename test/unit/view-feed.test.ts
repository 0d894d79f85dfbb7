// The hub's view fan-out (src/hub/view-feed.ts): one encoding per scope shared
// by every agent, chunked groups, full views built once for many joiners,
// resume from the change log, coalescing, scopes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ApiObject } from '../../src/api/meta.js';
import { agentChannelService, type HubMessage, type View } from '../../src/channel/protocol.js';
import { ViewFeed, type ViewGroup, type ViewSubscriber } from '../../src/hub/view-feed.js';
import { FileStore } from '../../src/store/file-store.js';

const quiet = { warn: () => undefined, error: () => undefined };

async function withStore(fn: (store: FileStore) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'meshfed-feed-'));
  const store = await FileStore.open(join(dir, 'data'), { logger: quiet });
  try {
    await fn(store);
  } finally {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
}

function workload(i: number, namespace = 'ns', padding = 0): ApiObject {
  return {
    apiVersion: 'meshfed.io/v1alpha1',
    kind: 'Workload',
    metadata: { name: `w-${i}`, namespace, ...(padding ? { annotations: { pad: 'x'.repeat(padding) } } : {}) },
    spec: { cluster: 'c1', service: 'svc', address: `10.0.${i >> 8}.${i & 255}`, ports: { grpc: 8080 } },
  };
}

const decode = agentChannelService()['Connect']!.responseDeserialize as (b: Buffer) => HubMessage;

/** A subscriber that decodes what it gets and applies it like the agent (groups, full replaces). */
class FakeAgent implements ViewSubscriber {
  readonly groups: ViewGroup[] = [];
  readonly views: View[] = [];
  readonly state = new Map<string, ApiObject>();
  revision = 0;
  private open: { full: boolean; upserts: ApiObject[]; deletes: string[] } | undefined;

  deliver(group: ViewGroup): void {
    this.groups.push(group);
    for (const m of group.msgs) {
      const v = decode(m).view!;
      this.views.push(v);
      if (v.full || !this.open) this.open = { full: v.full, upserts: [], deletes: [] };
      this.open.upserts.push(...(JSON.parse(v.upsertsJson) as ApiObject[]));
      this.open.deletes.push(...(JSON.parse(v.deletesJson) as string[]));
      if (v.more) continue;
      if (this.open.full) this.state.clear();
      for (const o of this.open.upserts) this.state.set(`${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`, o);
      for (const k of this.open.deletes) {
        const [kind, , ns, name] = k.split('/');
        this.state.delete(`${kind}/${ns}/${name}`);
      }
      this.revision = Number(v.revision);
      this.open = undefined;
    }
  }
}

const until = async (what: string, cond: () => boolean, ms = 5000): Promise<void> => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
};

test('a large full view goes out in chunks, built once for every agent that joins together', async () => {
  await withStore(async (store) => {
    // ~6 MB of objects: more than gRPC's default 4 MiB message limit.
    const objects = Array.from({ length: 3000 }, (_, i) => workload(i, 'ns', 2000));
    await store.commit(objects.map((object) => ({ type: 'put' as const, object })));
    const feed = new ViewFeed(store, { minIntervalMs: 10, chunkBytes: 64 * 1024 });
    try {
      const agents = Array.from({ length: 5 }, () => new FakeAgent());
      for (const a of agents) feed.attach(a, undefined, 0);
      await until('every agent has the full view', () => agents.every((a) => a.revision === store.revision()));
      assert.equal(feed.stats().fullViewsBuilt, 1, 'one build for all five');
      for (const a of agents) {
        assert.equal(a.state.size, 3000);
        assert.ok(a.views.length > 50, `${a.views.length} messages`);
        for (const m of a.groups[0]!.msgs) assert.ok(m.length < 70 * 1024 + 4096, `message of ${m.length} bytes`);
        // The very same Buffers for everyone.
        assert.equal(a.groups[0]!.msgs[3], agents[0]!.groups[0]!.msgs[3]);
      }
      assert.ok(agents[0]!.views[0]!.full && agents[0]!.views[0]!.more && !agents[0]!.views.at(-1)!.more);
    } finally {
      feed.close();
    }
  });
});

test('changes are encoded once per scope and shared; a scope gets only its namespaces', async () => {
  await withStore(async (store) => {
    const feed = new ViewFeed(store, { minIntervalMs: 10 });
    try {
      const all = [new FakeAgent(), new FakeAgent()];
      const scoped = new FakeAgent();
      for (const a of all) feed.attach(a, [], 0);
      feed.attach(scoped, ['blue'], 0);
      await until('empty full views', () => [...all, scoped].every((a) => a.groups.length === 1));
      await store.commit([{ type: 'put', object: workload(1, 'blue') }]);
      await store.commit([{ type: 'put', object: workload(2, 'red') }]);
      await until('both changes everywhere', () => all.every((a) => a.state.size === 2) && scoped.state.size === 1);
      assert.equal(all[0]!.groups.at(-1), all[1]!.groups.at(-1), 'one group object, shared');
      assert.deepEqual([...scoped.state.keys()], ['Workload/blue/w-1']);
      await store.commit([{ type: 'delete', ref: { kind: 'Workload', cluster: 'c1', namespace: 'blue', name: 'w-1' } }]);
      await until('the delete', () => all.every((a) => a.state.size === 1) && scoped.state.size === 0);
    } finally {
      feed.close();
    }
  });
});

test('an isolated change goes out at once; a burst within the window is coalesced', async () => {
  await withStore(async (store) => {
    const feed = new ViewFeed(store, { minIntervalMs: 200 });
    try {
      const a = new FakeAgent();
      feed.attach(a, undefined, 0);
      await until('full view', () => a.groups.length === 1);
      await new Promise((r) => setTimeout(r, 250));
      const t0 = performance.now();
      await store.commit([{ type: 'put', object: workload(1) }]);
      await until('first change', () => a.state.size === 1);
      assert.ok(performance.now() - t0 < 100, 'not held for the window');
      const before = a.groups.length;
      for (let i = 2; i <= 20; i++) await store.commit([{ type: 'put', object: workload(i) }]);
      await until('burst', () => a.state.size === 20);
      assert.ok(a.groups.length - before <= 3, `${a.groups.length - before} groups for 19 changes`);
      assert.equal(a.revision, store.revision());
    } finally {
      feed.close();
    }
  });
});

test('an agent that resumes gets only the logged changes after its revision; one too far behind gets a full view', async () => {
  await withStore(async (store) => {
    const feed = new ViewFeed(store, { minIntervalMs: 5, logBytes: 4096 });
    try {
      const first = new FakeAgent();
      feed.attach(first, undefined, 0);
      await store.commit([{ type: 'put', object: workload(1) }]);
      await until('first change', () => first.state.size === 1);
      const held = first.revision;
      feed.detach(first, undefined);
      await store.commit([{ type: 'put', object: workload(2) }]);
      await store.commit([{ type: 'put', object: workload(3) }]);
      // Flushed to the scope's log even with nobody attached.
      await new Promise((r) => setTimeout(r, 50));
      const back = new FakeAgent();
      feed.attach(back, undefined, held);
      await until('catch-up', () => back.revision === store.revision());
      assert.ok(
        back.views.every((v) => !v.full),
        'no full view',
      );
      assert.deepEqual([...back.state.keys()].sort(), ['Workload/ns/w-2', 'Workload/ns/w-3']);
      const builds = feed.stats().fullViewsBuilt;
      // Push the log past its 4 KiB cap: revision `held` is no longer covered.
      for (let i = 4; i < 40; i++) await store.commit([{ type: 'put', object: workload(i, 'ns', 200) }]);
      await new Promise((r) => setTimeout(r, 50));
      const late = new FakeAgent();
      feed.attach(late, undefined, held);
      await until('late agent', () => late.revision === store.revision());
      assert.equal(late.views[0]!.full, true);
      assert.equal(late.state.size, 39);
      assert.equal(feed.stats().fullViewsBuilt, builds + 1);
    } finally {
      feed.close();
    }
  });
});

test('a full view is consistent while changes keep coming during its build', async () => {
  await withStore(async (store) => {
    await store.commit(Array.from({ length: 5000 }, (_, i) => ({ type: 'put' as const, object: workload(i, 'ns', 300) })));
    const feed = new ViewFeed(store, { minIntervalMs: 1, chunkBytes: 32 * 1024 });
    try {
      const a = new FakeAgent();
      feed.attach(a, undefined, 0);
      // Changes land while the view is serialized in slices.
      const writes = (async () => {
        for (let i = 0; i < 50; i++) {
          await store.commit([
            { type: 'put', object: workload(10_000 + i) },
            { type: 'delete', ref: { kind: 'Workload', cluster: 'c1', namespace: 'ns', name: `w-${i}` } },
          ]);
        }
      })();
      await writes;
      await until('caught up', () => a.revision === store.revision());
      assert.equal(a.state.size, 5000);
      assert.ok(!a.state.has('Workload/ns/w-0') && a.state.has('Workload/ns/w-10049'));
    } finally {
      feed.close();
    }
  });
});

test('a joining agent learns it holds the current revision even when the latest changes were not for its scope', async () => {
  await withStore(async (store) => {
    const feed = new ViewFeed(store, { minIntervalMs: 1, heartbeatMs: 60_000 });
    try {
      const early = new FakeAgent();
      feed.attach(early, ['blue'], 0);
      await store.commit([{ type: 'put', object: workload(1, 'blue') }]);
      await until('blue change', () => early.state.size === 1);
      for (let i = 2; i < 6; i++) await store.commit([{ type: 'put', object: workload(i, 'red') }]);
      await new Promise((r) => setTimeout(r, 30));
      // Joins with the cached full view (or resumes): either way it is told the flushed revision at once.
      const fresh = new FakeAgent();
      feed.attach(fresh, ['blue'], 0);
      const resumed = new FakeAgent();
      feed.attach(resumed, ['blue'], early.revision);
      await until('both at the store revision', () => fresh.revision === store.revision() && resumed.revision === store.revision(), 2000);
      assert.deepEqual([...fresh.state.keys()], ['Workload/blue/w-1']);
    } finally {
      feed.close();
    }
  });
});
