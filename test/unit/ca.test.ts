// The CA: roots, per-cluster intermediates, workload certificates from CSRs,
// the checks every CSR goes through, and the credential files gRPC reads.
// Certificates are checked with node:crypto and a real mutual TLS handshake.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { connect, createServer, type TLSSocket } from 'node:tls';
import { describe, it } from 'node:test';
import {
  bundle,
  certInfo,
  createCsr,
  createRootCa,
  CsrRejected,
  generateKeyPair,
  intermediateId,
  loadCa,
  parseSpiffeId,
  renewalTime,
  signCsr,
  splitPem,
  verifyChain,
  userId,
  workloadId,
  writeCredentials,
  type CaMaterial,
} from '../../src/ca/index.js';

const TD = 'meshfed.local';

async function clusterCa(root: CaMaterial, cluster: string, ttl = 3600): Promise<CaMaterial> {
  const kp = await generateKeyPair();
  const issued = await signCsr(root, {
    csrPem: await createCsr(kp, { uris: [intermediateId(TD, cluster)], ca: true }),
    profile: 'intermediate',
    expectedId: intermediateId(TD, cluster),
    ttlSeconds: ttl,
  });
  return { certPem: issued.certPem, keyPem: kp.privateKeyPem, chainPem: issued.chainPem.slice(issued.certPem.length), rootsPem: root.rootsPem };
}

async function workloadCert(ca: CaMaterial, id: string, ttl = 600) {
  const kp = await generateKeyPair();
  const issued = await signCsr(ca, { csrPem: await createCsr(kp, { uris: [id], ca: false }), profile: 'workload', expectedId: id, ttlSeconds: ttl });
  return { ...issued, keyPem: kp.privateKeyPem };
}

async function rejected(p: Promise<unknown>, re: RegExp): Promise<void> {
  await assert.rejects(p, (e: Error) => {
    assert.ok(e instanceof CsrRejected, `expected CsrRejected, got ${e.name}: ${e.message}`);
    assert.match(e.message, re);
    return true;
  });
}

describe('SPIFFE IDs', () => {
  it('name the cluster, so one service account in two clusters is two identities', () => {
    const a = workloadId(TD, 'cluster1', 'rebels', 'x-wing');
    assert.equal(a, 'spiffe://meshfed.local/cluster/cluster1/ns/rebels/sa/x-wing');
    assert.notEqual(a, workloadId(TD, 'cluster2', 'rebels', 'x-wing'));
    assert.deepEqual(parseSpiffeId(a), { kind: 'workload', trustDomain: TD, cluster: 'cluster1', namespace: 'rebels', serviceAccount: 'x-wing' });
    assert.deepEqual(parseSpiffeId(intermediateId(TD, 'c2')), { kind: 'intermediate', trustDomain: TD, cluster: 'c2' });
    assert.equal(parseSpiffeId('spiffe://meshfed.local/ns/a/sa/b'), undefined);
    assert.equal(parseSpiffeId('https://meshfed.local/cluster/c1'), undefined);
  });
});

describe('issuing', () => {
  it('root -> cluster intermediate -> workload chains, and a real mutual TLS handshake trusts it across clusters', async () => {
    const root = await createRootCa({ trustDomain: TD, validityDays: 365 });
    assert.ok(certInfo(root.certPem).ca);
    const c1 = await clusterCa(root, 'cluster1');
    const c2 = await clusterCa(root, 'cluster2');
    const i1 = certInfo(c1.certPem);
    assert.ok(i1.ca);
    assert.deepEqual(i1.uris, [intermediateId(TD, 'cluster1')]);
    const server = await workloadCert(c2, workloadId(TD, 'cluster2', 'sample', 'helloworld'));
    const client = await workloadCert(c1, workloadId(TD, 'cluster1', 'sample', 'client'));
    assert.equal(splitPem(server.chainPem).length, 2, 'leaf + cluster intermediate');
    verifyChain(server.certPem, splitPem(server.chainPem).slice(1), [root.rootsPem]);
    assert.throws(() => verifyChain(server.certPem, [], [root.rootsPem]), /does not chain to a trusted root/);

    // A real TLS 1.3 handshake, both sides verifying against the root only.
    const srv = createServer({ cert: server.chainPem, key: server.keyPem, ca: root.rootsPem, requestCert: true, rejectUnauthorized: true }, (s) => {
      s.end(`hello ${certInfo((s as TLSSocket).getPeerX509Certificate()!.toString()).uris[0]}`);
    });
    srv.listen(0, '127.0.0.1');
    await once(srv, 'listening');
    const port = (srv.address() as { port: number }).port;
    const sock = connect({ host: '127.0.0.1', port, cert: client.chainPem, key: client.keyPem, ca: root.rootsPem, checkServerIdentity: () => undefined });
    let got = '';
    sock.on('data', (d) => (got += d));
    await once(sock, 'end');
    assert.equal(got, `hello ${workloadId(TD, 'cluster1', 'sample', 'client')}`);

    // A foreign root's workload is refused by the server.
    const foreign = await clusterCa(await createRootCa({ trustDomain: TD, validityDays: 1 }), 'cluster1');
    const evil = await workloadCert(foreign, workloadId(TD, 'cluster1', 'sample', 'client'));
    const refused = once(srv, 'tlsClientError') as Promise<[Error]>;
    const bad = connect({ host: '127.0.0.1', port, cert: evil.chainPem, key: evil.keyPem, ca: root.rootsPem, checkServerIdentity: () => undefined });
    let badGot = '';
    bad.on('data', (d) => (badGot += d));
    bad.on('error', () => undefined);
    const [why] = await refused;
    await once(bad, 'close');
    assert.equal(badGot, '', 'the foreign-root client got no answer');
    assert.ok(why instanceof Error, 'the server reported the refused handshake');
    sock.destroy();
    bad.destroy();
    srv.close();
  });

  it('a certificate never outlives its issuer', async () => {
    const root = await createRootCa({ trustDomain: TD, validityDays: 365 });
    const c1 = await clusterCa(root, 'cluster1', 60);
    const w = await workloadCert(c1, workloadId(TD, 'cluster1', 'ns', 'sa'), 3600);
    assert.ok(w.notAfter.getTime() <= new Date(certInfo(c1.certPem).notAfter).getTime());
    assert.ok(renewalTime(w.notBefore, w.notAfter) < w.notAfter);
  });

  it('refuses over-reaching or malformed CSRs, naming what is wrong', async () => {
    const root = await createRootCa({ trustDomain: TD, validityDays: 365 });
    const c1 = await clusterCa(root, 'cluster1');
    const kp = await generateKeyPair();
    const want = workloadId(TD, 'cluster1', 'sample', 'client');
    const sign = async (uris: string[], ca: boolean, profile: 'workload' | 'intermediate' = 'workload', expectedId = want) =>
      signCsr(profile === 'workload' ? c1 : root, { csrPem: await createCsr(kp, { uris, ca }), profile, expectedId, ttlSeconds: 60 });
    await rejected(sign(['spiffe://evil.example/cluster/cluster1/ns/sample/sa/client'], false), /trust domain evil\.example is not the mesh's \(meshfed\.local\)/);
    await rejected(sign([workloadId(TD, 'cluster2', 'sample', 'client')], false), /names cluster cluster2; the requester is cluster cluster1/);
    await rejected(sign([want], true), /requests CA:TRUE/);
    await rejected(sign([want, workloadId(TD, 'cluster1', 'sample', 'other')], false), /exactly one URI SAN/);
    await rejected(sign([workloadId(TD, 'cluster1', 'sample', 'admin')], false), /is not the requester's identity/);
    await rejected(sign([intermediateId(TD, 'cluster1')], false, 'intermediate', intermediateId(TD, 'cluster1')), /must request basicConstraints CA:TRUE/);
    await rejected(sign([intermediateId(TD, 'cluster2')], true, 'intermediate', intermediateId(TD, 'cluster1')), /names cluster cluster2/);
    await rejected(signCsr(c1, { csrPem: 'not a csr', profile: 'workload', expectedId: want, ttlSeconds: 60 }), /not a PEM PKCS#10/);
  });

  it('takes a user-supplied intermediate as the mesh CA (the root key stays with the user), and refuses a mismatched key', async () => {
    const userRoot = await createRootCa({ trustDomain: TD, validityDays: 365 });
    const meshCa = await clusterCa(userRoot, 'meshca'); // any CA signed by the user's root
    const loaded = await loadCa({ certChainPem: meshCa.certPem, keyPem: meshCa.keyPem, rootsPem: userRoot.certPem });
    const c1 = await clusterCa(loaded, 'cluster1');
    assert.equal(splitPem(c1.certPem + c1.chainPem).length, 2, 'cluster intermediate + mesh CA');
    const w = await workloadCert(c1, workloadId(TD, 'cluster1', 'a', 'b'));
    verifyChain(w.certPem, splitPem(w.chainPem).slice(1), [userRoot.certPem]);
    const other = await generateKeyPair();
    await assert.rejects(loadCa({ certChainPem: meshCa.certPem, keyPem: other.privateKeyPem, rootsPem: userRoot.certPem }), /CA key does not match/);
    const leaf = await workloadCert(c1, workloadId(TD, 'cluster1', 'a', 'b'));
    await assert.rejects(loadCa({ certChainPem: leaf.certPem, keyPem: leaf.keyPem, rootsPem: userRoot.certPem }), /is not a CA/);
    assert.equal(splitPem(bundle(userRoot.certPem, userRoot.certPem, meshCa.certPem)).length, 2);
  });
});

describe('credential files', () => {
  it('cert, key and CA switch together through one symlink; the key is owner-only', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'meshfed-creds-'));
    writeCredentials(dir, { certChainPem: 'C1', keyPem: 'K1', caPem: 'R1' });
    const first = readlinkSync(path.join(dir, '..data'));
    writeCredentials(dir, { certChainPem: 'C2', keyPem: 'K2', caPem: 'R2' });
    assert.notEqual(readlinkSync(path.join(dir, '..data')), first);
    assert.equal(readFileSync(path.join(dir, 'cert.pem'), 'utf8'), 'C2');
    assert.equal(readFileSync(path.join(dir, 'key.pem'), 'utf8'), 'K2');
    assert.equal(readFileSync(path.join(dir, 'ca.pem'), 'utf8'), 'R2');
    assert.equal(statSync(path.join(dir, 'key.pem')).mode & 0o077, 0);
  });
});

describe('user client certificates', () => {
  it('user IDs round-trip; a bad user segment is not a mesh ID', () => {
    assert.equal(userId('example.org', 'bob'), 'spiffe://example.org/user/bob');
    assert.deepEqual(parseSpiffeId('spiffe://example.org/user/Bob.Smith'), { kind: 'user', trustDomain: 'example.org', name: 'Bob.Smith' });
    assert.equal(parseSpiffeId('spiffe://example.org/user/bob/extra'), undefined);
    assert.equal(parseSpiffeId('spiffe://example.org/user/-bob'), undefined);
  });

  it('the user profile: client-auth only, not a CA, exactly the expected user ID', async () => {
    const root = await createRootCa({ trustDomain: 'example.org', validityDays: 1 });
    const key = await generateKeyPair();
    const issued = await signCsr(root, {
      csrPem: await createCsr(key, { uris: [userId('example.org', 'bob')], ca: false }),
      profile: 'user',
      expectedId: userId('example.org', 'bob'),
      ttlSeconds: 3600,
    });
    const c = new X509Certificate(issued.certPem);
    assert.equal(c.ca, false);
    assert.deepEqual(c.keyUsage, ['1.3.6.1.5.5.7.3.2']);
    assert.equal(c.subjectAltName, 'URI:spiffe://example.org/user/bob');
    assert.ok(c.verify(new X509Certificate(root.certPem).publicKey));
    await assert.rejects(
      signCsr(root, { csrPem: await createCsr(key, { uris: [userId('example.org', 'alice')], ca: false }), profile: 'user', expectedId: userId('example.org', 'bob'), ttlSeconds: 3600 }),
      (e: Error) => e instanceof CsrRejected && /user\/alice is not the requester's identity spiffe:\/\/example\.org\/user\/bob/.test(e.message),
    );
    await assert.rejects(
      signCsr(root, { csrPem: await createCsr(key, { uris: [userId('example.org', 'bob')], ca: true }), profile: 'user', expectedId: userId('example.org', 'bob'), ttlSeconds: 3600 }),
      (e: Error) => e instanceof CsrRejected && /requests CA:TRUE/.test(e.message),
    );
  });
});
