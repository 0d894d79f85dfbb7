// The registration discovery source (VMs and the demo): registrations persisted
// (journal + compaction), conflicts refused, deltas exact.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFile, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RegistrationSource } from '../../src/discovery/registration.js';
import { MeshfedError } from '../../src/util/errors.js';
import type { DiscoveredState, DiscoveryDelta } from '../../src/discovery/source.js';

async function source(zones = ['z1', 'z2']) {
  const dir = await mkdtemp(join(tmpdir(), 'meshfed-reg-'));
  const states: DiscoveredState[] = [];
  const deltas: (DiscoveryDelta | undefined)[] = [];
  const s = new RegistrationSource(dir, { cluster: 'cluster1', zones: () => zones });
  await s.start((st, d) => {
    states.push(st);
    deltas.push(d);
  });
  const cleanup = async () => {
    await s.stop();
    await rm(dir, { recursive: true, force: true });
  };
  return { dir, s, states, deltas, cleanup };
}

const keys = (d: DiscoveryDelta | undefined) => ({
  upserts: (d?.upserts ?? []).map((o) => `${o.kind}/${o.metadata.name}`),
  deletes: d?.deletes ?? [],
});

const base = { namespace: 'sample', service: 'helloworld', address: '127.0.0.1:5001', labels: { version: 'v1' }, serviceAccount: 'hw' };

test('register derives the workload and its service, persists before resolving, and survives a restart', async () => {
  const { dir, s, states, cleanup } = await source();
  try {
    const r = await s.register({ ...base, name: 'hw-1' });
    assert.equal(r.outcome, 'created');
    assert.equal(r.workload.spec.cluster, 'cluster1');
    assert.equal(r.workload.spec.zone, 'z1');
    const last = states.at(-1)!;
    assert.deepEqual(
      last.services.map((x) => [x.metadata.name, x.spec.ports]),
      [['helloworld', [{ name: 'grpc', port: 5001, protocol: 'GRPC' }]]],
    );
    // Appended to the journal (fsynced) before register() resolved.
    const journal = (await readFile(join(dir, 'registrations.jsonl'), 'utf8')).split('\n').filter(Boolean);
    assert.equal(journal.length, 1);
    assert.equal((JSON.parse(journal[0]!) as { put: { workload: { metadata: { name: string } } } }).put.workload.metadata.name, 'hw-1');
    const again = new RegistrationSource(dir, { cluster: 'cluster1', zones: () => [] });
    await again.start(() => {});
    assert.deepEqual(
      again.list().map((w) => w.metadata.name),
      ['hw-1'],
    );
    await again.stop();
  } finally {
    await cleanup();
  }
});

test('same registration twice is unchanged; a different one under the same name is refused unless replaced', async () => {
  const { s, cleanup } = await source();
  try {
    await s.register({ ...base, name: 'hw-1' });
    assert.equal((await s.register({ ...base, name: 'hw-1' })).outcome, 'unchanged');
    await assert.rejects(s.register({ ...base, name: 'hw-1', health: 'UNHEALTHY' }), (e: unknown) => {
      assert.ok(e instanceof MeshfedError);
      assert.equal(e.httpStatus, 409);
      assert.match(e.message, /sample\/hw-1 is already registered with a different definition .*--replace/);
      return true;
    });
    assert.equal((await s.register({ ...base, name: 'hw-1', health: 'UNHEALTHY', replace: true })).outcome, 'configured');
    assert.equal(s.list()[0]!.spec.health, 'UNHEALTHY');
  } finally {
    await cleanup();
  }
});

test('conflicts name what they conflict with, and change nothing', async () => {
  const { s, states, cleanup } = await source();
  try {
    await s.register({ ...base, name: 'hw-1' });
    const before = states.length;
    await assert.rejects(s.register({ ...base, name: 'other', service: 'other' }), /address 127\.0\.0\.1:5001 is already registered as workload sample\/hw-1/);
    await assert.rejects(
      s.register({ ...base, name: 'hw-2', address: '127.0.0.1:5002', servicePort: 7000 }),
      /service helloworld\.sample port "grpc" is 5001\/GRPC \(from workload sample\/hw-1\), not 7000\/GRPC/,
    );
    assert.equal(states.length, before);
    assert.equal(s.list().length, 1);
  } finally {
    await cleanup();
  }
});

test('bad input is rejected with the field named', async () => {
  const { s, cleanup } = await source();
  try {
    await assert.rejects(s.register({ ...base, address: 'db.example:5432' }), /address: "db\.example" is not an IP address/);
    await assert.rejects(s.register({ ...base, address: '127.0.0.1' }), /address: expected IP:PORT/);
    await assert.rejects(s.register({ ...base, zone: 'mars-1' }), /zone: "mars-1" is not a zone of cluster cluster1 \(z1, z2\)/);
    await assert.rejects(s.register({ ...base, service: 'Bad_Name' }), /service: /);
    assert.equal(s.list().length, 0);
  } finally {
    await cleanup();
  }
});

test('deregister by name or by address; unknown is a 404', async () => {
  const { s, cleanup } = await source();
  try {
    await s.register({ ...base, name: 'hw-1' });
    await s.register({ ...base, name: 'hw-2', address: '127.0.0.1:5002' });
    assert.deepEqual(
      (await s.deregister({ address: '127.0.0.1:5002' })).map((w) => w.metadata.name),
      ['hw-2'],
    );
    assert.deepEqual(
      (await s.deregister({ namespace: 'sample', name: 'hw-1' })).map((w) => w.metadata.name),
      ['hw-1'],
    );
    assert.equal(s.current().services.length, 0);
    await assert.rejects(s.deregister({ name: 'hw-1' }), (e: unknown) => e instanceof MeshfedError && e.httpStatus === 404);
  } finally {
    await cleanup();
  }
});

test('each change tells the listener exactly which objects changed', async () => {
  const { s, deltas, cleanup } = await source();
  try {
    assert.equal(deltas[0], undefined, 'the initial state comes without a delta');
    await s.register({ ...base, name: 'hw-1' });
    assert.deepEqual(keys(deltas.at(-1)), { upserts: ['Service/helloworld', 'Workload/hw-1'], deletes: [] });
    await s.register({ ...base, name: 'hw-2', address: '127.0.0.1:5002' });
    // Same service, same ports: the Service did not change.
    assert.deepEqual(keys(deltas.at(-1)), { upserts: ['Workload/hw-2'], deletes: [] });
    await s.register({ ...base, name: 'hw-3', address: '127.0.0.1:6000', portName: 'admin', servicePort: 6000 });
    assert.deepEqual(keys(deltas.at(-1)), { upserts: ['Service/helloworld', 'Workload/hw-3'], deletes: [] });
    await s.deregister({ namespace: 'sample', name: 'hw-3' });
    assert.deepEqual(keys(deltas.at(-1)), { upserts: ['Service/helloworld'], deletes: ['Workload/cluster1/sample/hw-3'] });
    await s.deregister({ address: '127.0.0.1:5002' });
    assert.deepEqual(keys(deltas.at(-1)), { upserts: [], deletes: ['Workload/cluster1/sample/hw-2'] });
    await s.deregister({ namespace: 'sample', name: 'hw-1' });
    assert.deepEqual(keys(deltas.at(-1)), { upserts: [], deletes: ['Workload/cluster1/sample/hw-1', 'Service/cluster1/sample/helloworld'] });
    assert.deepEqual(s.current(), { services: [], workloads: [] });
  } finally {
    await cleanup();
  }
});

test('the journal is compacted into registrations.json; a restart replays both, dropping a torn last line', async () => {
  const { dir, s, cleanup } = await source();
  try {
    const n = 1500;
    for (let i = 0; i < n; i++) await s.register({ ...base, name: `w-${i}`, address: `10.0.${i >> 8}.${i & 255}:5001`, labels: { version: `v${i}` } });
    for (let i = 0; i < n; i += 3) await s.deregister({ namespace: 'sample', name: `w-${i}` });
    // Compacted at least once: registrations.json holds many, and the journal is smaller than it.
    const snap = JSON.parse(await readFile(join(dir, 'registrations.json'), 'utf8')) as unknown[];
    assert.ok(snap.length > 100, `registrations.json holds ${snap.length}`);
    assert.ok((await stat(join(dir, 'registrations.jsonl'))).size < (await stat(join(dir, 'registrations.json'))).size * 1.1);
    await s.stop();
    await appendFile(join(dir, 'registrations.jsonl'), '{"put":{"workload":');
    const again = new RegistrationSource(dir, { cluster: 'cluster1', zones: () => ['z1'] });
    await again.start(() => {});
    const names = again.list().map((w) => w.metadata.name);
    assert.equal(names.length, n - Math.ceil(n / 3));
    assert.ok(!names.includes('w-0') && names.includes('w-1') && !names.includes('w-1497') && names.includes('w-1499'));
    assert.deepEqual(
      again.current().services.map((x) => x.metadata.name),
      ['helloworld'],
    );
    await again.stop();
  } finally {
    await cleanup();
  }
});
