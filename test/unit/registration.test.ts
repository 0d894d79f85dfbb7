import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RegistrationError, RegistrationSource } from '../../src/discovery/registration.js';
import type { DiscoveredState } from '../../src/discovery/source.js';

async function source(zones = ['z1', 'z2']) {
  const dir = await mkdtemp(join(tmpdir(), 'meshfed-reg-'));
  const states: DiscoveredState[] = [];
  const s = new RegistrationSource(dir, { cluster: 'cluster1', zones: () => zones });
  await s.start((st) => states.push(st));
  return { dir, s, states, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

const base = { namespace: 'sample', service: 'helloworld', address: '127.0.0.1:5001', labels: { version: 'v1' }, serviceAccount: 'hw' };

test('register derives the workload and its service, persists before resolving, and survives a restart', async () => {
  const { dir, s, states, cleanup } = await source();
  try {
    const r = await s.register({ ...base, name: 'hw-1' });
    assert.equal(r.outcome, 'created');
    assert.equal(r.workload.metadata.cluster, 'cluster1');
    assert.equal(r.workload.spec.zone, 'z1');
    const last = states.at(-1)!;
    assert.deepEqual(last.services.map((x) => [x.metadata.name, x.spec.ports]), [['helloworld', [{ name: 'grpc', port: 5001, protocol: 'GRPC' }]]]);
    const onDisk = JSON.parse(await readFile(join(dir, 'registrations.json'), 'utf8')) as unknown[];
    assert.equal(onDisk.length, 1);
    const again = new RegistrationSource(dir, { cluster: 'cluster1', zones: () => [] });
    await again.start(() => {});
    assert.deepEqual(again.list().map((w) => w.metadata.name), ['hw-1']);
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
      assert.ok(e instanceof RegistrationError);
      assert.equal(e.status, 409);
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
    assert.deepEqual((await s.deregister({ address: '127.0.0.1:5002' })).map((w) => w.metadata.name), ['hw-2']);
    assert.deepEqual((await s.deregister({ namespace: 'sample', name: 'hw-1' })).map((w) => w.metadata.name), ['hw-1']);
    assert.equal(s.current().services.length, 0);
    await assert.rejects(s.deregister({ name: 'hw-1' }), (e: unknown) => e instanceof RegistrationError && e.status === 404);
  } finally {
    await cleanup();
  }
});
