// Leader election of hub replicas (src/hub/leadership.ts) on a real etcd:
// one leader among replicas on one prefix, every replica registered with its
// role; a clean stop hands over at once; a leader cut off from etcd steps
// down before its lease could expire, and the standby takes over once it has
// (never two leaders). A FileStore hub always leads.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EtcdStore } from '../../src/store/etcd-store.js';
import { FileStore } from '../../src/store/file-store.js';
import { startLeadership, type Leadership, type ReplicaInfo } from '../../src/hub/leadership.js';
import { startEtcd, type EtcdCluster } from '../helpers/etcd.js';
import { eventually } from '../helpers/eventually.js';
import { captureLogger } from '../helpers/store-conformance.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';

let etcd: EtcdCluster;
before(async () => {
  etcd = await startEtcd();
});
after(async () => {
  await etcd?.stop();
});

function info(id: string): ReplicaInfo {
  return { id, api: `http://127.0.0.1:1/${id}`, agents: `127.0.0.1:2`, version: 'test', startedAt: new Date().toISOString() };
}

function open(prefix: string, endpoint?: string): Promise<EtcdStore> {
  return EtcdStore.open({ endpoints: endpoint ? [endpoint] : etcd.endpoints, prefix, logger: captureLogger(), timeoutMs: 1000 });
}

/** A replica: its store, its leadership and the role changes it saw. */
async function replica(prefix: string, id: string, endpoint?: string): Promise<{ store: EtcdStore; l: Leadership; changes: boolean[] }> {
  const store = await open(prefix, endpoint);
  const l = await startLeadership(store, info(id), { leaseMs: 2000 });
  const changes: boolean[] = [];
  await l.onChange((leader) => void changes.push(leader));
  return { store, l, changes };
}

test('one leader among two replicas; both registered with their roles; a clean stop hands over at once', async () => {
  const prefix = `/lead-${randomUUID()}`;
  const a = await replica(prefix, 'a');
  const b = await replica(prefix, 'b');
  try {
    assert.equal(a.l.isLeader(), true);
    assert.equal(b.l.isLeader(), false);
    assert.equal(b.l.leader()?.id, 'a');
    assert.deepEqual(
      (await b.l.replicas()).map((r) => [r.id, r.role]),
      [
        ['a', 'leader'],
        ['b', 'standby'],
      ],
    );
    const t0 = Date.now();
    await a.l.stop();
    assert.deepEqual(a.changes, [true, false]);
    await eventually('b to lead', async () => (b.l.isLeader() ? true : undefined), 3000, 20);
    const ms = Date.now() - t0;
    console.log(`clean hand-over: ${ms} ms`);
    assert.ok(ms < 1500, `hand-over took ${ms} ms`);
    assert.deepEqual(b.changes, [true]);
    assert.deepEqual(
      (await b.l.replicas()).map((r) => [r.id, r.role]),
      [['b', 'leader']],
    );
  } finally {
    await a.l.stop();
    await b.l.stop();
    await a.store.close();
    await b.store.close();
  }
});

test('a leader cut off from etcd steps down before its lease could expire; the standby takes over once it expires', async () => {
  const prefix = `/lead-${randomUUID()}`;
  // Replica a reaches etcd through a proxy: pausing it is a's network failing (or a crash, as the standby sees it).
  const proxy = await TcpProxy.start(Number(etcd.endpoints[0]!.split(':')[1]));
  const a = await replica(prefix, 'a', `127.0.0.1:${proxy.port}`);
  const b = await replica(prefix, 'b');
  try {
    assert.equal(a.l.isLeader(), true);
    const t0 = Date.now();
    await proxy.pause();
    await eventually('a to step down', async () => (a.l.isLeader() ? undefined : true), 4000, 20);
    const down = Date.now() - t0;
    await eventually('b to lead', async () => (b.l.isLeader() ? true : undefined), 6000, 20);
    const up = Date.now() - t0;
    console.log(`a stepped down after ${down} ms; b leads after ${up} ms (lease 2 s)`);
    assert.ok(down <= 2000, `a stepped down after ${down} ms, past the lease TTL`);
    assert.ok(up < 4000, `b took over after ${up} ms`);
    assert.ok(down < up, 'never two leaders');
    // Back on the network: a stays standby under b.
    await proxy.resume();
    await eventually('a to see b lead', async () => (a.l.leader()?.id === 'b' ? true : undefined), 8000, 50);
    assert.equal(a.l.isLeader(), false);
    assert.deepEqual(a.changes, [true, false]);
    assert.deepEqual(
      (await a.l.replicas()).map((r) => [r.id, r.role]),
      [
        ['b', 'leader'],
        ['a', 'standby'],
      ],
    );
  } finally {
    await proxy.resume().catch(() => undefined);
    await a.l.stop();
    await b.l.stop();
    await a.store.close();
    await b.store.close();
    await proxy.close();
  }
});

test('a FileStore hub always leads, alone', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'meshfed-lead-'));
  const store = await FileStore.open(dir);
  try {
    const l = await startLeadership(store, info('solo'), { leaseMs: 2000 });
    const changes: boolean[] = [];
    await l.onChange((leader) => void changes.push(leader));
    assert.equal(l.isLeader(), true);
    assert.deepEqual(
      (await l.replicas()).map((r) => [r.id, r.role]),
      [['solo', 'leader']],
    );
    await l.stop();
    assert.deepEqual(changes, [true, false]);
  } finally {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
});
