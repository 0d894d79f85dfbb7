// The hub's root of trust without processes: join tokens, redeeming them,
// what the hub signs for whom (and refuses, naming why), who it accepts on the
// channel, root rotation phases, a user-supplied mesh CA, and the status
// warnings; what it keeps in the store (the root key sealed with the state
// key), and two HubTrusts on one store standing for two hub replicas. The same
// code runs in the hub; the e2e tests drive it over gRPC.
import assert from 'node:assert/strict';
import { createPublicKey, randomBytes, X509Certificate } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { API_VERSION } from '../../src/api/index.js';
import { agentId, createCsr, createRootCa, CsrRejected, fingerprint, generateKeyPair, intermediateId, signCsr, splitPem, verifyChain, type CaMaterial } from '../../src/ca/index.js';
import { importKeyPair, x509 } from '../../src/ca/x509.js';
import { formatJoinToken, hashSecret, MalformedJoinToken, newJoinToken, parseJoinToken, secretMatches } from '../../src/channel/join-token.js';
import { expiryWarning, HubTrust, TRUST_KIND, trustStatus, type TrustState } from '../../src/hub/trust.js';
import { openRootKey, ROOT_KEY_KIND, type StateKey } from '../../src/hub/state-key.js';
import { CredentialStore } from '../../src/auth/credentials.js';
import { MeshfedError } from '../../src/util/errors.js';
import { FileStore } from '../../src/store/file-store.js';

const TD = 'meshfed.local';
const dirs: string[] = [];
const closers: (() => Promise<void> | void)[] = [];

after(async () => {
  for (const c of closers) await c();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const quiet = { warn: () => undefined, error: () => undefined };
const STATE_KEY: StateKey = { key: randomBytes(32), source: 'test.key' };

async function hub(
  opts: { external?: { certChainPem: string; keyPem: string; rootsPem: string }; dir?: string; store?: FileStore; stateKey?: StateKey } = {},
): Promise<{ trust: HubTrust; store: FileStore; dir: string }> {
  const dir = opts.dir ?? opts.store?.dataDir ?? (await mkdtemp(join(tmpdir(), 'meshfed-trust-')));
  if (!opts.dir && !opts.store) dirs.push(dir);
  const store = opts.store ?? (await FileStore.open(dir, { logger: quiet }));
  await store.commit(
    ['east', 'west'].map((name) => ({ type: 'put' as const, object: { apiVersion: API_VERSION, kind: 'Cluster', metadata: { name }, spec: { network: 'n', region: 'r', zones: ['z'] } } })),
  );
  const trust = await HubTrust.open({
    dataDir: dir,
    store,
    stateKey: opts.stateKey ?? STATE_KEY,
    channelHosts: [],
    agentCertTtlMs: 3_600_000,
    ...(opts.external ? { external: opts.external } : {}),
  }).catch(async (err: unknown) => {
    if (!opts.store) await store.close();
    throw err;
  });
  closers.push(async () => {
    trust.close();
    if (!opts.store) await store.close();
  });
  return { trust, store, dir };
}

/** Every object of the trust's internal kinds, as JSON. */
async function storedTrust(store: FileStore): Promise<string> {
  return JSON.stringify([...(await store.list({ kind: TRUST_KIND })), ...(await store.list({ kind: ROOT_KEY_KIND }))]);
}

async function csr(uri: string, ca: boolean) {
  const key = await generateKeyPair();
  return { key, csrPem: await createCsr(key, { uris: [uri], ca }) };
}

async function refusedJoin(p: Promise<unknown>, reason: string, re: RegExp): Promise<void> {
  await assert.rejects(p, (e: Error) => {
    assert.ok(e instanceof MeshfedError, `expected MeshfedError, got ${e.name}: ${e.message}`);
    assert.equal(e.reason, reason);
    assert.match(e.message, re);
    return true;
  });
}

describe('join tokens', () => {
  it('round-trip; malformed tokens are named without repeating the secret', () => {
    const t = newJoinToken(['a'.repeat(64), 'b'.repeat(64)]);
    const text = formatJoinToken(t);
    assert.match(text, /^mfj1\.[0-9a-f]{16}\.[A-Za-z0-9_-]{43}\.a{64},b{64}$/);
    assert.deepEqual(parseJoinToken(text), t);
    for (const bad of [text.replace('mfj1', 'mfj2'), text.split('.').slice(0, 3).join('.'), text.replace(t.secret, 'short'), text.replace(/a{64}/, 'zz')]) {
      assert.throws(
        () => parseJoinToken(bad),
        (e: Error) => e instanceof MalformedJoinToken && !e.message.includes(t.secret) && /mfj1\.<id>\.<secret>/.test(e.message),
      );
    }
    assert.ok(secretMatches(t.secret, hashSecret(t.secret)));
    assert.ok(!secretMatches(t.secret + 'x', hashSecret(t.secret)));
  });
});

describe('hub trust', () => {
  it('generates the root once, its key sealed in the store; nothing secret stored; a wrong state key is refused by name', async () => {
    const { trust, dir, store } = await hub();
    const t = await trust.createJoinToken('east', 60_000);
    const stored = await storedTrust(store);
    assert.ok(!stored.includes('PRIVATE KEY'), 'no PEM private key text in the store');
    assert.ok(!stored.includes(parseJoinToken(t.token).secret), 'only a hash of the token is stored');
    assert.ok(stored.includes(hashSecret(parseJoinToken(t.token).secret)));
    assert.deepEqual(t.pins, [fingerprint(trust.bundlePem())]);
    const [sealed, ...more] = await store.list({ kind: ROOT_KEY_KIND });
    assert.equal(more.length, 0);
    assert.equal(sealed!.metadata.name, fingerprint(trust.bundlePem()));
    assert.deepEqual(Object.keys(sealed!.spec as object).sort(), ['algorithm', 'ciphertext', 'fingerprint', 'iv', 'tag']);
    // The sealed key round-trips, and is the root's.
    const keyPem = openRootKey(STATE_KEY, sealed!);
    assert.match(keyPem, /PRIVATE KEY/);
    assert.equal(createPublicKey(keyPem).export({ type: 'spki', format: 'pem' }), new X509Certificate(trust.bundlePem()).publicKey.export({ type: 'spki', format: 'pem' }));
    // Sealed for its fingerprint only: under another root's name it does not open.
    assert.throws(() => openRootKey(STATE_KEY, { ...sealed!, metadata: { name: 'f'.repeat(64) }, spec: { ...(sealed!.spec as object), fingerprint: 'f'.repeat(64) } }), /cannot decrypt its key/);
    // A restart keeps the root.
    trust.close();
    await store.close();
    closers.length = 0;
    const again = await hub({ dir });
    assert.equal(again.trust.bundlePem(), trust.bundlePem());
    again.trust.close();
    await again.store.close();
    closers.length = 0;
    // Another state key: refused, naming the root and why.
    const fp = fingerprint(trust.bundlePem());
    await assert.rejects(
      hub({ dir, stateKey: { key: randomBytes(32), source: 'other.key' } }),
      (e: Error) =>
        e instanceof MeshfedError &&
        e.message ===
          `root ${fp}: cannot decrypt its key (store object HubRootKey ${fp}): the state key other.key is not the one it was encrypted with; every hub replica needs the same --state-key-file`,
    );
  });

  it('redeems a token once; expired, reused, unknown, wrong-secret and wrong-cluster tokens are refused by name', async () => {
    const { trust } = await hub();
    const t = parseJoinToken((await trust.createJoinToken('east', 60_000)).token);
    const good = await csr(agentId(TD, 'east'), false);
    const req = { tokenId: t.id, tokenSecret: t.secret, cluster: 'east', csrPem: good.csrPem };
    await refusedJoin(trust.redeemJoinToken({ ...req, cluster: 'west' }), 'WrongCluster', /is for cluster "east", but the agent says it is cluster "west"/);
    await refusedJoin(trust.redeemJoinToken({ ...req, tokenSecret: 'x'.repeat(43) }), 'BadToken', /secret does not match/);
    await refusedJoin(trust.redeemJoinToken({ ...req, tokenId: '0123456789abcdef' }), 'UnknownToken', /is not known to this hub/);
    // CSR problems do not use the token up.
    const bad = async (uri: string, ca: boolean, re: RegExp) => refusedJoin(trust.redeemJoinToken({ ...req, csrPem: (await csr(uri, ca)).csrPem }), 'CsrRejected', re);
    await refusedJoin(trust.redeemJoinToken({ ...req, csrPem: 'garbage' }), 'CsrRejected', /agent CSR refused: CSR is not a PEM PKCS#10/);
    await bad(agentId('other.example', 'east'), false, /trust domain other\.example is not the mesh's \(meshfed\.local\)/);
    await bad(agentId(TD, 'west'), false, /names cluster west; the requester is cluster east/);
    await bad(agentId(TD, 'east'), true, /requests CA:TRUE; only cluster intermediates may be CAs/);
    const res = await trust.redeemJoinToken(req);
    const certs = splitPem(res.certChainPem);
    verifyChain(certs[0]!, certs.slice(1), splitPem(res.rootsPem));
    assert.equal(
      new X509Certificate(certs[0]!).publicKey.export({ type: 'spki', format: 'pem' }),
      (await import('node:crypto')).createPublicKey(good.key.privateKeyPem).export({ type: 'spki', format: 'pem' }),
    );
    await refusedJoin(trust.redeemJoinToken(req), 'UsedToken', /was already used at .*single-use/);
    const short = parseJoinToken((await trust.createJoinToken('east', 1)).token);
    await new Promise((r) => setTimeout(r, 10));
    await refusedJoin(trust.redeemJoinToken({ ...req, tokenId: short.id, tokenSecret: short.secret }), 'ExpiredToken', /expired at/);
    // The agent's certificate is accepted for its own cluster only.
    assert.equal(trust.checkAgentCertificate(new X509Certificate(certs[0]!).raw, 'east'), undefined);
    assert.equal(trust.checkAgentCertificate(new X509Certificate(certs[0]!).raw, 'west')?.code, 'IdentityMismatch');
    // Deleting the Cluster revokes it and its pending tokens.
    const pending = parseJoinToken((await trust.createJoinToken('east', 60_000)).token);
    await trust.revokeCluster('east', 'cluster "east" was deleted at the hub');
    const revoked = trust.checkAgentCertificate(new X509Certificate(certs[0]!).raw, 'east');
    assert.equal(revoked?.code, 'Revoked');
    assert.match(revoked!.message, /cluster "east" was deleted at the hub at .*revoked/);
    await refusedJoin(trust.redeemJoinToken({ ...req, tokenId: pending.id, tokenSecret: pending.secret }), 'RevokedToken', /was revoked at .*deleted/);
  });

  it('signs intermediates only for the session cluster, as CAs, in the mesh trust domain', async () => {
    const { trust } = await hub();
    const bad = async (uri: string, ca: boolean, re: RegExp) =>
      assert.rejects(trust.signIntermediate('east', (await csr(uri, ca)).csrPem), (e: Error) => e instanceof CsrRejected && re.test(e.message));
    await bad(intermediateId(TD, 'west'), true, /names cluster west; the requester is cluster east/);
    await bad(intermediateId('evil.example', 'east'), true, /trust domain evil\.example is not the mesh's/);
    await bad(intermediateId(TD, 'east'), false, /must request basicConstraints CA:TRUE/);
    await assert.rejects(trust.signIntermediate('east', 'nope'), /not a PEM PKCS#10/);
    const ok = await trust.signIntermediate('east', (await csr(intermediateId(TD, 'east'), true)).csrPem);
    verifyChain(splitPem(ok.certChainPem)[0]!, [], splitPem(ok.rootsPem));
    const st = trust.status({ clusters: ['east', 'west'], connected: new Set(['east']), channel: 'mtls' });
    const east = st.clusters.find((c) => c.cluster === 'east')!;
    assert.equal(east.intermediate?.root, fingerprint(trust.bundlePem()));
    assert.equal(east.intermediate?.serial, new X509Certificate(splitPem(ok.certChainPem)[0]!).serialNumber.toUpperCase());
    assert.deepEqual(st.workloads, []);
  });

  it('refuses an agent certificate minted by a cluster intermediate (it chains to the same root)', async () => {
    const { trust } = await hub();
    const inter = await csr(intermediateId(TD, 'east'), true);
    const issued = await trust.signIntermediate('east', inter.csrPem);
    const ca: CaMaterial = { certPem: splitPem(issued.certChainPem)[0]!, keyPem: inter.key.privateKeyPem, chainPem: '', rootsPem: issued.rootsPem };
    const rogue = await signCsr(ca, { csrPem: (await csr(agentId(TD, 'west'), false)).csrPem, profile: 'agent', expectedId: agentId(TD, 'west'), ttlSeconds: 60 });
    verifyChain(rogue.certPem, [ca.certPem], splitPem(issued.rootsPem)); // TLS alone would accept it
    const r = trust.checkAgentCertificate(new X509Certificate(rogue.certPem).raw, 'west');
    assert.equal(r?.code, 'Unauthenticated');
    assert.match(r!.message, /not issued by this hub's mesh CA/);
  });

  it('rotates the root in phases: bundle first, then signing, then retirement', async () => {
    const { trust, store } = await hub();
    const changes: string[] = [];
    trust.onChange(() => changes.push(trust.bundleMessage().rotationPhase));
    const old = fingerprint(trust.bundlePem());
    await assert.rejects(trust.rotateRoot('activate'), /no root rotation in progress/);
    await trust.rotateRoot('add');
    const m1 = trust.bundleMessage();
    assert.equal(splitPem(m1.rootsPem).length, 2);
    assert.equal(fingerprint(m1.signerPem), old, 'the old root still signs');
    await assert.rejects(trust.rotateRoot('add'), /already in progress \(phase new-root-in-bundle\): the next step is --activate/);
    await assert.rejects(trust.rotateRoot('retire'), /run --activate first/);
    const before = await trust.signIntermediate('east', (await csr(intermediateId(TD, 'east'), true)).csrPem);
    await trust.rotateRoot('activate');
    const m2 = trust.bundleMessage();
    const fresh = fingerprint(m2.signerPem);
    assert.notEqual(fresh, old);
    assert.equal(m2.rotationPhase, 'new-root-active');
    // The intermediate issued under the old root still verifies (old root in the bundle), but retiring waits for re-issue.
    verifyChain(splitPem(before.certChainPem)[0]!, [], splitPem(m2.rootsPem));
    await assert.rejects(trust.rotateRoot('retire', { clusters: ['east', 'west'] }), /not yet re-issued under the new root: east \(intermediate\).*--force/);
    const after = await trust.signIntermediate('east', (await csr(intermediateId(TD, 'east'), true)).csrPem);
    verifyChain(splitPem(after.certChainPem)[0]!, [], [splitPem(m2.rootsPem).find((r) => fingerprint(r) === fresh)!]);
    await trust.rotateRoot('retire', { clusters: ['east', 'west'] });
    assert.deepEqual(splitPem(trust.bundlePem()).map(fingerprint), [fresh]);
    assert.deepEqual(changes, ['new-root-in-bundle', 'new-root-active', 'none']);
    const keys = (await store.list({ kind: ROOT_KEY_KIND })).map((o) => o.metadata.name);
    assert.deepEqual(keys, [fresh], "the retired root's key is deleted");
    const st = trust.status({ clusters: ['east'], connected: new Set(), channel: 'mtls' });
    assert.deepEqual(
      st.roots.map((r) => r.phase),
      ['retired', 'active'],
    );
    assert.equal(st.rotation.phase, 'none');
  });

  it('signs with a user-supplied intermediate; the user root anchors the bundle; rotation is refused', async () => {
    const userRoot = await createRootCa({ trustDomain: TD, validityDays: 365 });
    // The user's mesh CA, issued by their own tooling: a CA that may sign CAs (path length 1).
    const k = await generateKeyPair();
    const rootCert = new x509.X509Certificate(userRoot.certPem);
    const meshCa = await x509.X509CertificateGenerator.create({
      serialNumber: '01',
      subject: 'CN=user mesh CA',
      issuer: rootCert.subjectName,
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 86_400_000),
      publicKey: k.keys.publicKey,
      signingKey: (await importKeyPair(userRoot.keyPem)).keys.privateKey,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      extensions: [new x509.BasicConstraintsExtension(true, 1, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true)],
    });
    const meshCaPem = meshCa.toString('pem') + '\n';
    const { trust, store } = await hub({ external: { certChainPem: meshCaPem, keyPem: k.privateKeyPem, rootsPem: userRoot.certPem } });
    assert.equal(trust.bundlePem(), userRoot.certPem);
    const issued = await trust.signIntermediate('east', (await csr(intermediateId(TD, 'east'), true)).csrPem);
    const chain = splitPem(issued.certChainPem);
    assert.equal(chain.length, 2, 'cluster intermediate + the user-supplied mesh CA');
    verifyChain(chain[0]!, chain.slice(1), [userRoot.certPem]);
    await assert.rejects(trust.rotateRoot('add'), /user-supplied/);
    assert.deepEqual(await store.list({ kind: ROOT_KEY_KIND }), [], 'no key of the user CA is stored');
    assert.ok(!(await storedTrust(store)).includes('PRIVATE KEY'));

    // A CA that may not sign CAs (path length 0) is refused at start.
    const k0 = await generateKeyPair();
    const pathLen0 = await signCsr(userRoot, {
      csrPem: await createCsr(k0, { uris: [intermediateId(TD, 'meshca')], ca: true }),
      profile: 'intermediate',
      expectedId: intermediateId(TD, 'meshca'),
      ttlSeconds: 86_400,
    });
    await assert.rejects(hub({ external: { certChainPem: pathLen0.certPem, keyPem: k0.privateKeyPem, rootsPem: userRoot.certPem } }), /pathLenConstraint is 0/);
  });
});

describe('two hub replicas on one store', () => {
  it('share one root; a token made on one redeems on the other; a revocation and a rotation on one are followed by the other', async () => {
    const a = await hub();
    const b = await hub({ store: a.store });
    assert.equal(b.trust.bundlePem(), a.trust.bundlePem(), 'the second takes the root the first made');
    const t = parseJoinToken((await a.trust.createJoinToken('east', 60_000)).token);
    const good = await csr(agentId(TD, 'east'), false);
    const res = await b.trust.redeemJoinToken({ tokenId: t.id, tokenSecret: t.secret, cluster: 'east', csrPem: good.csrPem });
    const cert = new X509Certificate(splitPem(res.certChainPem)[0]!).raw;
    assert.equal(a.trust.checkAgentCertificate(cert, 'east'), undefined, 'the certificate b issued is accepted by a');
    // Single use across replicas.
    await refusedJoin(a.trust.redeemJoinToken({ tokenId: t.id, tokenSecret: t.secret, cluster: 'east', csrPem: good.csrPem }), 'UsedToken', /was already used/);

    const pending = parseJoinToken((await b.trust.createJoinToken('east', 60_000)).token);
    await a.trust.revokeCluster('east', 'cluster "east" was deleted at the hub');
    assert.equal(b.trust.checkAgentCertificate(cert, 'east')?.code, 'Revoked');
    await refusedJoin(b.trust.redeemJoinToken({ tokenId: pending.id, tokenSecret: pending.secret, cluster: 'east', csrPem: good.csrPem }), 'RevokedToken', /was revoked/);

    const seen: string[] = [];
    b.trust.onChange(() => seen.push(b.trust.bundleMessage().rotationPhase));
    await a.trust.rotateRoot('add');
    assert.equal(b.trust.bundlePem(), a.trust.bundlePem());
    await assert.rejects(b.trust.rotateRoot('add'), /already in progress/);
    await a.trust.rotateRoot('activate');
    assert.equal(fingerprint(b.trust.bundleMessage().signerPem), fingerprint(a.trust.bundleMessage().signerPem), 'b signs with the new root too');
    const inter = await b.trust.signIntermediate('west', (await csr(intermediateId(TD, 'west'), true)).csrPem);
    verifyChain(splitPem(inter.certChainPem)[0]!, [], [splitPem(a.trust.bundlePem()).find((r) => fingerprint(r) === fingerprint(a.trust.bundleMessage().signerPem))!]);
    assert.deepEqual(seen, ['new-root-in-bundle', 'new-root-active']);
  });

  it('concurrent changes on both lose nothing', async () => {
    const a = await hub();
    const b = await hub({ store: a.store });
    const made = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).trust.createJoinToken('west', 60_000)));
    const state = (await a.store.get({ kind: TRUST_KIND, name: 'trust' }))!.spec as TrustState;
    assert.deepEqual(state.tokens.map((r) => r.id).sort(), made.map((m) => parseJoinToken(m.token).id).sort());
  });

  it('API credentials: created once; a token made on one verifies on the other; a revocation on one is refused by both at once', async () => {
    const { store } = await hub();
    const [one, two] = await Promise.all([CredentialStore.open(store), CredentialStore.open(store)]);
    closers.push(
      () => one.store.close(),
      () => two.store.close(),
    );
    assert.equal([one.created, two.created].filter(Boolean).length, 1, 'exactly one replica created the records');
    const made = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? one : two).store.create({ user: `u${i}`, groups: [], ttlMs: 60_000 })));
    for (const m of made) assert.ok(one.store.verify(m.token) && two.store.verify(m.token));
    await one.store.revoke(made[3]!.info.id);
    assert.equal(two.store.verify(made[3]!.token), undefined);
    assert.equal(one.store.verify(made[3]!.token), undefined);
    assert.equal(two.store.list().length, 10);
  });
});

describe('trust status warnings', () => {
  it('warn under 20% of the lifetime left and when expired', () => {
    const now = new Date('2030-01-01T00:00:00Z');
    const at = (s: number) => new Date(now.getTime() + s * 1000).toISOString();
    assert.equal(expiryWarning('x', at(-50), at(50), now), undefined);
    assert.match(expiryWarning('x', at(-85), at(15), now)!, /^x expires in 15s .*less than 20% of its lifetime left/);
    assert.match(expiryWarning('x', at(-100), at(-5), now)!, /^x expired 5s ago/);
  });

  it('name clusters whose intermediate expires, and what no longer signs', async () => {
    const root = await createRootCa({ trustDomain: TD, validityDays: 10 });
    const other = await createRootCa({ trustDomain: TD, validityDays: 10 });
    const now = new Date();
    const at = (s: number) => new Date(now.getTime() + s * 1000).toISOString();
    const rec = (notBefore: string, notAfter: string, signer: string) => ({ serial: 'AA', spiffeId: 'x', notBefore, notAfter, signer, root: signer, issuedAt: notBefore });
    const state: TrustState = {
      version: 1,
      mode: 'generated',
      roots: [{ fingerprint: fingerprint(root.certPem), certPem: root.certPem, phase: 'active', createdAt: at(0) }],
      clusters: {
        east: { intermediate: rec(at(-90), at(10), fingerprint(root.certPem)), agentCerts: [] },
        west: { intermediate: rec(at(-10), at(90), fingerprint(other.certPem)), agentCerts: [rec(at(-100), at(-1), fingerprint(root.certPem))] },
      },
      tokens: [],
    };
    const st = trustStatus({
      state,
      trustDomain: TD,
      intermediateTtlMs: 100_000,
      signerPem: root.certPem,
      server: { certPem: root.certPem },
      channel: 'insecure',
      clusters: ['east', 'west'],
      connected: new Set(),
      now,
    });
    assert.equal(st.warnings.length, 3, st.warnings.join('\n'));
    assert.match(st.warnings[0]!, /cluster east: intermediate CA expires in 10s/);
    assert.match(st.warnings[1]!, /cluster west: intermediate CA is signed by a CA that no longer signs/);
    assert.match(st.warnings[2]!, /cluster west: agent certificate expired/);
  });
});
