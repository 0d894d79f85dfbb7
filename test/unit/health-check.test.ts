// Active health checks of registered workloads (src/discovery/health-check.ts):
// the request's validation, thresholds, real TCP and gRPC health probes, and a
// registration whose check fails published UNHEALTHY (its persisted form
// unchanged, the check restarted with the agent).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HealthChecker, probe, validateHealthCheck, type CheckStatus } from '../../src/discovery/health-check.js';
import { RegistrationSource } from '../../src/discovery/registration.js';
import type { Workload } from '../../src/api/index.js';
import { freePort } from '../../src/demo/processes.js';
import { protoDir } from '../../src/util/paths.js';
import { eventually } from '../helpers/eventually.js';

test('a healthCheck request is checked field by field', () => {
  const err = (raw: unknown) => {
    try {
      validateHealthCheck(raw);
      return '';
    } catch (e) {
      return (e as Error).message;
    }
  };
  assert.equal(err({ type: 'tcp' }), '');
  assert.equal(err({ type: 'grpc', service: 'helloworld.Greeter', port: 8081, interval: '2s', timeout: '500ms', unhealthyThreshold: 3, healthyThreshold: 2 }), '');
  assert.match(err({ type: 'http' }), /^healthCheck\.type: must be "tcp" or "grpc", got "http"/);
  assert.match(err({ type: 'tcp', intervall: '2s' }), /^healthCheck\.intervall: unknown field/);
  assert.match(err({ type: 'tcp', service: 'x' }), /^healthCheck\.service: a string, for type grpc only/);
  assert.match(err({ type: 'tcp', interval: '500ms' }), /^healthCheck\.interval: at least 1s/);
  assert.match(err({ type: 'tcp', interval: 'soon' }), /^healthCheck\.interval: must be a duration/);
  assert.match(err({ type: 'tcp', interval: '2s', timeout: '2s' }), /^healthCheck\.timeout: at least 10ms and shorter than the interval/);
  assert.match(err({ type: 'tcp', port: 70000 }), /^healthCheck\.port: must be a port number/);
  assert.match(err({ type: 'tcp', unhealthyThreshold: 0 }), /^healthCheck\.unhealthyThreshold: an integer from 1 to 10/);
  assert.match(err('tcp'), /^healthCheck: must be an object/);
});

test('thresholds: the first probe decides; then unhealthyThreshold failures in a row to fail, healthyThreshold passes to pass', async () => {
  const results: (string | undefined)[] = [undefined, 'down', undefined, 'down', 'down', 'down', undefined, undefined];
  const seen: CheckStatus['state'][] = [];
  let probes = 0;
  const checker = new HealthChecker(
    (_k, st) => seen.push(st.state),
    () => Promise.resolve(results[probes++] ?? undefined),
  );
  // interval 1s is the minimum; the fake probe resolves at once, so waiting covers ~8 probes.
  checker.set('ns/w', { type: 'tcp', interval: '1s', unhealthyThreshold: 2, healthyThreshold: 2 }, '127.0.0.1', 1);
  try {
    await eventually('eight probes', async () => (probes >= 8 ? true : undefined), 12_000);
    // pass (Passing), down (1 of 2), pass (streak reset), down, down (Failing), down, pass (1 of 2), pass (Passing)
    assert.deepEqual(seen, ['Passing', 'Failing', 'Passing']);
  } finally {
    checker.stop();
  }
});

test('probes: TCP connect and the gRPC health protocol against real listeners', async () => {
  const tcp = net.createServer((s) => s.end());
  await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
  const tcpPort = (tcp.address() as net.AddressInfo).port;
  const closed = await freePort();
  let serving = 'SERVING';
  const def = protoLoader.loadSync(join(protoDir(), 'grpc', 'health', 'v1', 'health.proto'), { enums: String });
  const health = (grpc.loadPackageDefinition(def) as unknown as { grpc: { health: { v1: { Health: { service: grpc.ServiceDefinition } } } } }).grpc.health.v1.Health;
  const server = new grpc.Server();
  server.addService(health.service, {
    Check: (call: grpc.ServerUnaryCall<{ service: string }, unknown>, cb: grpc.sendUnaryData<unknown>) =>
      call.request.service === 'nope' ? cb({ code: grpc.status.NOT_FOUND, details: 'unknown service' }) : cb(null, { status: serving }),
  });
  const grpcPort = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
  try {
    assert.equal(await probe({ type: 'tcp' }, '127.0.0.1', tcpPort), undefined);
    assert.match((await probe({ type: 'tcp' }, '127.0.0.1', closed))!, /^tcp connect to 127\.0\.0\.1:\d+: ECONNREFUSED$/);
    assert.equal(await probe({ type: 'grpc' }, '127.0.0.1', grpcPort), undefined);
    serving = 'NOT_SERVING';
    assert.match((await probe({ type: 'grpc' }, '127.0.0.1', grpcPort))!, /^gRPC health check of 127\.0\.0\.1:\d+: NOT_SERVING$/);
    assert.match((await probe({ type: 'grpc', service: 'nope' }, '127.0.0.1', grpcPort))!, /\(service "nope"\): NOT_FOUND unknown service$/);
    // A TCP server that is not gRPC: the probe fails within its timeout.
    assert.match((await probe({ type: 'grpc', timeout: '300ms' }, '127.0.0.1', tcpPort))!, /^gRPC health check of 127\.0\.0\.1:\d+: (UNAVAILABLE|DEADLINE_EXCEEDED)/);
  } finally {
    tcp.close();
    server.forceShutdown();
  }
});

test('a registration whose check fails is published UNHEALTHY with the reason; what is persisted stays as registered', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'meshfed-hc-'));
  let up = false;
  const fakeProbe = () => Promise.resolve(up ? undefined : 'tcp connect to 10.0.0.1:8080: ECONNREFUSED');
  const published = new Map<string, Workload>();
  const onChange = (st: { workloads: Workload[] }) => {
    for (const w of st.workloads) published.set(w.metadata.name, w);
  };
  let s = new RegistrationSource(dir, { cluster: 'c1', zones: () => ['z1'] }, fakeProbe);
  try {
    await s.start(onChange);
    await s.register({ namespace: 'ns', service: 'svc', address: '10.0.0.1:8080', name: 'vm1', healthCheck: { type: 'tcp', interval: '1s' } });
    await eventually('UNHEALTHY', async () => (published.get('vm1')?.spec.health === 'UNHEALTHY' ? true : undefined));
    const w = published.get('vm1')! as Workload & { status: { healthCheck: CheckStatus } };
    assert.equal(w.status.healthCheck.state, 'Failing');
    assert.equal(w.status.healthCheck.message, 'tcp connect to 10.0.0.1:8080: ECONNREFUSED');
    up = true;
    await eventually('HEALTHY again', async () => (published.get('vm1')?.spec.health === 'HEALTHY' ? true : undefined), 5000);
    await s.stop();

    // Restarted: the registration (with its check) is back, and checked again.
    up = false;
    published.clear();
    s = new RegistrationSource(dir, { cluster: 'c1', zones: () => ['z1'] }, fakeProbe);
    await s.start(onChange);
    assert.equal(published.get('vm1')?.spec.health, 'HEALTHY', 'as registered until the first probe');
    await eventually('UNHEALTHY after the restart', async () => (published.get('vm1')?.spec.health === 'UNHEALTHY' ? true : undefined));
    // DRAINING stays DRAINING whatever the check says.
    await s.register({ namespace: 'ns', service: 'svc', address: '10.0.0.1:8080', name: 'vm1', health: 'DRAINING', healthCheck: { type: 'tcp', interval: '1s' }, replace: true });
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(published.get('vm1')?.spec.health, 'DRAINING');
  } finally {
    await s.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
