// The agent's side of the agent channel against a real hub (in process) and
// against a hub that misbehaves: views far above gRPC's default 4 MiB message
// limit arrive whole, and a hub that accepts and drops the agent is redialed
// with a growing backoff, not in a loop.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ApiObject } from '../../src/api/meta.js';
import { HubConnection, type ViewUpdate } from '../../src/agent/hub-connection.js';
import { agentChannelServerService, type AgentStream } from '../../src/channel/protocol.js';
import { Hub } from '../../src/hub/hub.js';
import { freePort } from '../../src/demo/processes.js';

process.env.MESHFED_LOG_LEVEL ??= 'error';

const hello = { cluster: 'c1', network: 'n', region: 'r', zones: ['z'], agentVersion: 'test' };

function cluster(name: string): ApiObject {
  return { apiVersion: 'meshfed.io/v1alpha1', kind: 'Cluster', metadata: { name }, spec: { network: 'n', region: 'r', zones: ['z'] } };
}

function workload(i: number, annotation = ''): ApiObject {
  return {
    apiVersion: 'meshfed.io/v1alpha1',
    kind: 'Workload',
    metadata: { name: `w-${i}`, namespace: 'ns', ...(annotation ? { annotations: { note: annotation } } : {}) },
    spec: { cluster: 'c2', service: 'svc', address: `10.1.${i >> 8}.${i & 255}`, ports: { grpc: 8080 } },
  };
}

const until = async (what: string, cond: () => boolean, ms = 20_000): Promise<void> => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

test('a fleet-sized view (and one object larger than 4 MiB) reaches the agent whole', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'meshfed-hubconn-'));
  const hub = await Hub.start({ dataDir: dir, api: { host: '127.0.0.1', port: 0 }, agents: { host: '127.0.0.1', port: 0 }, insecureChannel: true }); // view sizes, not trust (trust.test.ts)
  const views: ViewUpdate[] = [];
  let revision = 0;
  const conn = new HubConnection({
    hubAddress: `127.0.0.1:${hub.agentAddress.port}`,
    hello,
    viewRevision: () => revision,
    onView: (v) => {
      views.push(v);
      revision = v.revision;
    },
    report: () => [],
  });
  try {
    // ~12 MB of view, plus one 5 MB object: the default 4 MiB limit would cut the agent off.
    await hub.store.commit([cluster('c1'), cluster('c2')].map((object) => ({ type: 'put' as const, object })));
    await hub.store.commit(Array.from({ length: 12_000 }, (_, i) => ({ type: 'put' as const, object: workload(i, 'x'.repeat(800)) })));
    await hub.store.commit([{ type: 'put', object: workload(99_999, 'y'.repeat(5 * 1024 * 1024)) }]);
    conn.start();
    await until('the full view', () => revision === hub.store.revision());
    const full = views.find((v) => v.full)!;
    assert.equal(full.upserts.length, 2 + 12_001);
    assert.ok(full.upsertsJson.length > 20, `the view came in ${full.upsertsJson.length} messages`);
    assert.equal(conn.status().connected, true);
    assert.equal(conn.status().connects, 1, 'no reconnect');
    // A change after it arrives as a delta.
    await hub.store.commit([{ type: 'put', object: workload(100_000) }]);
    await until('the delta', () => revision === hub.store.revision());
    assert.deepEqual(
      views.at(-1)!.upserts.map((o) => o.metadata.name),
      ['w-100000'],
    );
  } finally {
    conn.stop();
    await hub.stop();
    await rm(dir, { recursive: true, force: true });
  }
});

/** A hub that welcomes every agent and drops it `dropAfterMs` later. */
async function droppingHub(dropAfterMs: number, listenPort = 0): Promise<{ address: string; connects: number[]; drops: number[]; close: () => void }> {
  const server = new grpc.Server();
  const connects: number[] = [];
  const drops: number[] = [];
  server.addService(agentChannelServerService(), {
    Connect: (stream: AgentStream) => {
      stream.once('data', () => {
        connects.push(Date.now());
        stream.write({ welcome: { hubVersion: 'test' } });
        setTimeout(() => {
          drops.push(Date.now());
          stream.emit('error', { code: grpc.status.UNAVAILABLE, details: 'dropped' });
          stream.destroy();
        }, dropAfterMs);
      });
      stream.on('error', () => undefined);
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync(`127.0.0.1:${listenPort}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  return { address: `127.0.0.1:${port}`, connects, drops, close: () => server.forceShutdown() };
}

test('a hub that accepts and drops the agent is redialed with a growing backoff, not at once', async () => {
  const hub = await droppingHub(20);
  const conn = new HubConnection({ hubAddress: hub.address, hello, viewRevision: () => 0, onView: () => undefined, report: () => [] });
  try {
    conn.start();
    await new Promise((r) => setTimeout(r, 4000));
    // 0.25 s doubling (jittered to half at least): at most ~6 connections in 4 s; resetting
    // the backoff on every Welcome would make it 15 or more.
    assert.ok(hub.connects.length >= 3 && hub.connects.length <= 7, `${hub.connects.length} connections in 4 s`);
    const gaps = hub.connects.slice(1).map((t, i) => t - hub.connects[i]!);
    assert.ok(gaps.at(-1)! > gaps[0]!, `gaps ${gaps.join(', ')} ms grow`);
  } finally {
    conn.stop();
    hub.close();
  }
});

test('a hub that was unreachable for a while is reached within about a second of its return', async () => {
  const port = await freePort();
  const conn = new HubConnection({ hubAddress: `127.0.0.1:${port}`, hello, viewRevision: () => 0, onView: () => undefined, report: () => [] });
  let hub: Awaited<ReturnType<typeof droppingHub>> | undefined;
  try {
    conn.start();
    // Long enough for an uncapped backoff (ours, or gRPC's own reconnect backoff) to grow past several seconds.
    await new Promise((r) => setTimeout(r, 8000));
    hub = await droppingHub(60_000, port);
    const back = Date.now();
    await until('the agent connects', () => hub!.connects.length > 0, 10_000);
    const ms = hub.connects[0]! - back;
    assert.ok(ms <= 1000, `connected ${ms} ms after the hub came back`);
    process.stdout.write(`# reconnected ${ms} ms after the hub came back (8 s away)\n`);
  } finally {
    conn.stop();
    hub?.close();
  }
});

test('after a connection that stayed up, the backoff starts over', async () => {
  const hub = await droppingHub(500);
  const conn = new HubConnection({ hubAddress: hub.address, hello, viewRevision: () => 0, onView: () => undefined, report: () => [], healthyAfterMs: 300 });
  try {
    conn.start();
    await until('four connections', () => hub.connects.length >= 4, 10_000);
    // Every connection lasted 500 ms > 300 ms: each redial waits the first backoff step only.
    for (let i = 0; i < 3; i++) {
      const wait = hub.connects[i + 1]! - hub.drops[i]!;
      assert.ok(wait < 400, `redial ${i + 1} after ${wait} ms`);
    }
  } finally {
    conn.stop();
    hub.close();
  }
});
