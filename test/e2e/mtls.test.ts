// End to end: mTLS across clusters with real hub/agent processes, real
// @grpc/grpc-js-xds clients and xDS servers, certificates from `meshfed
// identity run` (keys generated beside each workload, signed by its cluster's
// intermediate). Measured numbers are printed as TAP comments (# ...).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import * as grpc from '@grpc/grpc-js';
import { API_VERSION, type ApiObject } from '../../src/api/index.js';
import { createCsr, createRootCa, generateKeyPair, intermediateId, signCsr, splitPem, verifyChain, workloadId, writeCredentials } from '../../src/ca/index.js';
import { DEMO_CLUSTERS, LocalFleet, clusterObject, type ServerHandle } from '../../src/demo/fleet.js';
import { meshfedBin } from '../../src/demo/processes.js';
import { greeter, type HelloReply } from '../../src/samples/helloworld/greeter.js';
import { TickLog } from '../helpers/tick-log.js';

const TD = 'meshfed.local';
let fleet: LocalFleet;
let server2: ServerHandle;

function mesh(spec: Record<string, unknown>): ApiObject {
  return { apiVersion: API_VERSION, kind: 'Mesh', metadata: { name: 'default' }, spec: { trustDomain: TD, ...spec } };
}

before(async () => {
  fleet = await LocalFleet.create();
  await fleet.startHub();
  await fleet.apply([mesh({ mtls: { mode: 'STRICT' } }), ...DEMO_CLUSTERS.map(clusterObject)]);
  await Promise.all(DEMO_CLUSTERS.map((c) => fleet.startAgent(c)));
  [server2] = await Promise.all([fleet.startServer('cluster2', { name: 'hw-c2', version: 'v2', identity: true }), fleet.startServer('cluster3', { name: 'hw-c3', version: 'v3', identity: true })]);
});

after(async () => {
  await fleet?.close();
});

async function meshClient(cluster: string, name: string, sa: string, target = 'xds:///helloworld.sample', certDir?: string): Promise<TickLog> {
  const dir = certDir ?? (await fleet.startIdentity(cluster, 'sample', sa, name)).dir;
  const bootstrap = await fleet.bootstrap(cluster, 'sample', name, false, dir);
  return new TickLog(fleet.startClient(cluster, bootstrap, { target, rate: 50, name, tickMs: 250 }));
}

/** Every regular file under dir (symlinks not followed: they point inside it). */
function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : e.isFile() ? [join(dir, e.name)] : []));
}

/** A plain gRPC call (no xDS, no certificate) straight to a server's address. */
async function plaintextCall(address: string): Promise<HelloReply> {
  const c = new (greeter().Client)(address, grpc.credentials.createInsecure());
  try {
    return await new Promise<HelloReply>((resolve, reject) => c.SayHello({ name: 'plain' }, new grpc.Metadata(), { deadline: Date.now() + 2000 }, (err, r) => (err ? reject(err) : resolve(r!))));
  } finally {
    c.close();
  }
}

test("a cross-cluster call is mutually authenticated: the server sees the caller's SPIFFE ID", async () => {
  const log = await meshClient('cluster1', 'x-wing', 'x-wing');
  await log.waitFor(0, 4, (t) => t.ok > 0 && t.failed === 0);
  const sum = await log.calls(log.mark(), 200);
  assert.equal(sum.failed, 0, JSON.stringify(sum.errors));
  assert.deepEqual(Object.keys(sum.peers), [workloadId(TD, 'cluster1', 'sample', 'x-wing')]);
  assert.ok((sum.byBackend['cluster2/v2'] ?? 0) > 0 && (sum.byBackend['cluster3/v3'] ?? 0) > 0, JSON.stringify(sum.byBackend));
  process.stdout.write(`# mTLS from cluster1: ${sum.ok} calls, servers saw ${Object.keys(sum.peers)[0]}; backends ${JSON.stringify(sum.byBackend)}\n`);
  await fleet.procs.stop(log.child);

  // meshfed trust status lists the workload certificates the agents issued, with their expiry.
  const want = [workloadId(TD, 'cluster1', 'sample', 'x-wing'), workloadId(TD, 'cluster2', 'sample', 'helloworld'), workloadId(TD, 'cluster3', 'sample', 'helloworld')];
  const t0 = Date.now();
  let listed: { spiffeId: string; cluster: string; notAfter: string }[] = [];
  while (!want.every((w) => listed.some((l) => l.spiffeId === w)) && Date.now() - t0 < 10_000) {
    listed = ((await (await fleet.hubFetch(`/api/v1alpha1/trust`)).json()) as { workloads: typeof listed }).workloads;
    await new Promise((r) => setTimeout(r, 200));
  }
  for (const w of want)
    assert.ok(
      listed.some((l) => l.spiffeId === w && Date.parse(l.notAfter) > Date.now()),
      `${w} in trust status: ${JSON.stringify(listed)}`,
    );
  const cli = spawnSync(process.execPath, [meshfedBin(), 'trust', 'status', '--hub', fleet.hubUrl], { encoding: 'utf8', env: { ...process.env, ...fleet.cliEnv() } });
  assert.equal(cli.status, 0, cli.stderr);
  assert.match(cli.stdout, /WORKLOAD IDENTITY[\s\S]*spiffe:\/\/meshfed\.local\/cluster\/cluster1\/ns\/sample\/sa\/x-wing/);

  // The workload's key was generated beside it: no agent or hub file, log or API answer holds it.
  // Base64 characters 48..88 of a P-256 PKCS#8 key encode bytes 36..66: the private scalar only (before: the fixed ASN.1 header).
  const key = readFileSync(join(fleet.dir, 'identities', 'cluster1-x-wing', 'key.pem'), 'utf8')
    .split('\n')
    .filter((l) => l && !l.startsWith('-----'))
    .join('')
    .slice(48, 88);
  const leaks = walk(fleet.dir).filter((f) => !f.includes(`${join('identities', 'cluster1-x-wing')}`) && readFileSync(f).toString('latin1').replace(/\s/g, '').includes(key));
  assert.deepEqual(leaks, [], 'the workload key appears outside its own directory');
  for (const path of ['/v1/identity/certificates', '/v1/status']) assert.ok(!(await (await fleet.agentFetch('cluster1', path)).text()).includes(key));
});

test('STRICT refuses plaintext; a client with a certificate from a foreign root is refused', async () => {
  await assert.rejects(plaintextCall(server2.address), (e: grpc.ServiceError) => e.code === grpc.status.UNAVAILABLE);

  // Foreign client: its own certificate comes from another root, but it trusts
  // the mesh's root, so only the server's check can refuse it.
  const who = await fleet.agentFetch('cluster1', `/v1/identity/tokens`, { method: 'POST', body: JSON.stringify({ namespace: 'sample', serviceAccount: 'probe' }) });
  const { token } = (await who.json()) as { token: string };
  const bundle = (await (await fleet.agentFetch('cluster1', `/v1/identity/bundle`, { headers: { authorization: `Bearer ${token}` } })).json()) as { caPem: string };
  const foreignRoot = await createRootCa({ trustDomain: TD, validityDays: 1 });
  const ik = await generateKeyPair();
  const inter = await signCsr(foreignRoot, {
    csrPem: await createCsr(ik, { uris: [intermediateId(TD, 'cluster1')], ca: true }),
    profile: 'intermediate',
    expectedId: intermediateId(TD, 'cluster1'),
    ttlSeconds: 3600,
  });
  const wk = await generateKeyPair();
  const id = workloadId(TD, 'cluster1', 'sample', 'x-wing');
  const leaf = await signCsr(
    { certPem: inter.certPem, keyPem: ik.privateKeyPem, chainPem: '', rootsPem: foreignRoot.rootsPem },
    { csrPem: await createCsr(wk, { uris: [id], ca: false }), profile: 'workload', expectedId: id, ttlSeconds: 600 },
  );
  const dir = join(fleet.dir, 'foreign');
  mkdirSync(dir, { recursive: true });
  writeCredentials(dir, { certChainPem: leaf.chainPem, keyPem: wk.privateKeyPem, caPem: bundle.caPem });
  const log = await meshClient('cluster1', 'foreign', 'unused', 'xds:///helloworld.sample', dir);
  const sum = await log.ticksAfter(0, 8);
  assert.equal(sum.ok, 0, `a foreign-root client got answers: ${JSON.stringify(sum.byBackend)}`);
  assert.ok(sum.failed > 0);
  process.stdout.write(`# foreign-root client: ${sum.failed} calls refused (${Object.keys(sum.errors).join('; ').slice(0, 160)})\n`);
  await fleet.procs.stop(log.child);
});

test('a server whose certificate names another identity than its registration is refused (SAN mismatch)', async () => {
  // Registered as helloworld in namespace san, but its certificate says impostor.
  await fleet.startServer('cluster2', { name: 'hw-impostor', version: 'v9', namespace: 'san', identity: true, serviceAccount: 'impostor', registeredServiceAccount: 'helloworld' });
  const log = await meshClient('cluster1', 'san-client', 'x-wing', 'xds:///helloworld.san');
  const sum = await log.ticksAfter(0, 8);
  assert.equal(sum.ok, 0, `the impostor answered: ${JSON.stringify(sum.byBackend)}`);
  assert.ok(sum.failed > 0);
  process.stdout.write(`# SAN mismatch: ${sum.failed} calls refused\n`);
  await fleet.procs.stop(log.child);
});

test('PERMISSIVE (per-service override) accepts plaintext; back to STRICT refuses it again, without restarts', async () => {
  await fleet.apply([mesh({ mtls: { mode: 'STRICT', services: [{ namespace: 'sample', name: 'helloworld', mode: 'PERMISSIVE' }] } })]);
  const t0 = Date.now();
  let reply: HelloReply | undefined;
  while (!reply && Date.now() - t0 < 15_000) reply = await plaintextCall(server2.address).catch(() => undefined);
  assert.ok(reply, 'plaintext accepted in PERMISSIVE');
  assert.equal(reply.peer, 'plaintext');
  process.stdout.write(`# PERMISSIVE applied to a running server in ${Date.now() - t0} ms\n`);
  await fleet.apply([mesh({ mtls: { mode: 'STRICT' } })]);
  const t1 = Date.now();
  let refused = false;
  while (!refused && Date.now() - t1 < 15_000)
    refused = await plaintextCall(server2.address).then(
      () => false,
      () => true,
    );
  assert.ok(refused, 'plaintext refused again in STRICT');
  process.stdout.write(`# STRICT re-applied in ${Date.now() - t1} ms\n`);
});

/** Serial numbers of the leaf and its issuer in a credentials directory. */
function chainSerials(dir: string): { leaf: string; issuer: string; roots: number } {
  const certs = splitPem(readFileSync(join(dir, 'cert.pem'), 'utf8'));
  return { leaf: new X509Certificate(certs[0]!).serialNumber, issuer: new X509Certificate(certs[1]!).serialNumber, roots: splitPem(readFileSync(join(dir, 'ca.pem'), 'utf8')).length };
}

test('workload certificates and intermediates rotate under load with no failed call', async () => {
  await fleet.apply([mesh({ mtls: { mode: 'STRICT' }, ca: { workloadCertTtl: '4s', intermediateCertTtl: '12s' } })]);
  const id = await fleet.startIdentity('cluster1', 'sample', 'rotator', 'rotator');
  const log = await meshClient('cluster1', 'rotator', 'rotator', 'xds:///helloworld.sample', id.dir);
  await log.waitFor(0, 4, (t) => t.ok > 0 && t.failed === 0);
  const mark = log.mark();
  const leaves = new Set<string>();
  const issuers = new Set<string>();
  const serverIssuers = new Set<string>();
  const serverDir = join(fleet.dir, 'identities', 'cluster2-hw-c2');
  const until = Date.now() + 20_000;
  while (Date.now() < until) {
    const c = chainSerials(id.dir);
    leaves.add(c.leaf);
    issuers.add(c.issuer);
    serverIssuers.add(chainSerials(serverDir).issuer);
    await new Promise((r) => setTimeout(r, 200));
  }
  const sum = log.since(mark);
  assert.ok(leaves.size >= 5, `workload certificates renewed: ${leaves.size} in 20 s`);
  assert.ok(issuers.size >= 2 && serverIssuers.size >= 2, `intermediates renewed: client side ${issuers.size}, server side ${serverIssuers.size}`);
  assert.equal(sum.failed, 0, JSON.stringify(sum.errors));
  assert.ok(sum.ok > 500);
  process.stdout.write(
    `# rotation under load (20 s, 50 calls/s): ${leaves.size} client certificates, ${issuers.size} cluster1 intermediates, ${serverIssuers.size} cluster2 intermediates; ${sum.ok} calls ok, ${sum.failed} failed\n`,
  );
  await fleet.procs.stop(log.child);
  await fleet.apply([mesh({ mtls: { mode: 'STRICT' } })]);
});

test('the root rotates in three steps under load with no failed call: new root in every bundle, then signing, then the old one retired', async () => {
  const hub = async (step: string) => {
    const r = await fleet.hubFetch(`/api/v1alpha1/trust/rotate-root`, { method: 'POST', body: JSON.stringify({ step }) });
    assert.equal(r.status, 200, await r.text());
  };
  const id = await fleet.startIdentity('cluster1', 'sample', 'rotator', 'root-rotator');
  const log = await meshClient('cluster1', 'root-rotator', 'rotator', 'xds:///helloworld.sample', id.dir);
  await log.waitFor(0, 4, (t) => t.ok > 0 && t.failed === 0);
  const mark = log.mark();
  const dirs = [id.dir, join(fleet.dir, 'identities', 'cluster2-hw-c2'), join(fleet.dir, 'identities', 'cluster3-hw-c3')];
  const roots = (dir: string) => splitPem(readFileSync(join(dir, 'ca.pem'), 'utf8'));
  const fp = (pem: string) => new X509Certificate(pem).fingerprint256;
  const oldRoots = new Set(roots(id.dir).map(fp));
  const waitAll = async (what: string, pred: (dir: string) => boolean): Promise<number> => {
    const t0 = Date.now();
    while (!dirs.every(pred)) {
      if (Date.now() - t0 > 30_000) throw new Error(`${what}: not reached by every workload in 30 s`);
      await new Promise((r) => setTimeout(r, 100));
    }
    return Date.now() - t0;
  };
  await hub('add');
  const tBundle = await waitAll('new root in every bundle', (d) => roots(d).length === 2);
  const newRoot = roots(id.dir).find((r) => !oldRoots.has(fp(r)))!;
  assert.ok(newRoot, 'a new root in the bundle');
  await hub('activate');
  const tSigned = await waitAll('every workload chains to the new root', (d) => {
    const chain = splitPem(readFileSync(join(d, 'cert.pem'), 'utf8'));
    try {
      verifyChain(chain[0]!, chain.slice(1), [newRoot]);
      return true;
    } catch {
      return false;
    }
  });
  await new Promise((r) => setTimeout(r, 1500)); // file_watcher refresh: new handshakes use the new files
  await hub('retire');
  const tRetired = await waitAll('old root gone from every bundle', (d) => roots(d).length === 1 && fp(roots(d)[0]!) === fp(newRoot));
  await new Promise((r) => setTimeout(r, 2000));
  const sum = log.since(mark);
  assert.equal(sum.failed, 0, JSON.stringify(sum.errors));
  assert.ok(sum.ok > 100);
  process.stdout.write(
    `# root rotation under load: new root in every bundle ${tBundle} ms after add, every workload re-issued ${tSigned} ms after activate, old root gone ${tRetired} ms after retire; ${sum.ok} calls ok, ${sum.failed} failed\n`,
  );
  // A fresh handshake after the rotation works too.
  const fresh = await meshClient('cluster1', 'after-rotation', 'x-wing');
  await fresh.waitFor(0, 4, (t) => t.ok > 0 && t.failed === 0);
  await fleet.procs.stop(fresh.child);
  await fleet.procs.stop(log.child);
});
