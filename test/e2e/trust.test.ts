// Federated trust with real processes: joining with one-time tokens, the mTLS
// agent channel and who it refuses, CSR checks, where keys (never) go,
// intermediate renewal without restarts, root rotation in phases, revocation
// on Cluster delete, `meshfed trust status`, and the --insecure-channel mode.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { API_VERSION } from '../../src/api/index.js';
import { agentId, createCsr, createRootCa, fingerprint, generateKeyPair, intermediateId, signCsr, splitPem, verifyChain } from '../../src/ca/index.js';
import { parseJoinToken } from '../../src/channel/join-token.js';
import type { HubMessage } from '../../src/channel/protocol.js';
import { agentCredentials } from '../../src/channel/tls.js';
import { LocalFleet, type ClusterSpec } from '../../src/demo/fleet.js';
import { meshfedBin } from '../../src/demo/processes.js';
import type { TrustStatus } from '../../src/hub/trust.js';
import { RawSession, rawJoin, readCredential } from '../helpers/channel-client.js';

const TD = 'meshfed.local';
const A: ClusterSpec = { name: 'east', network: 'n1', region: 'r1', zones: ['z1'] };
const B: ClusterSpec = { name: 'west', network: 'n1', region: 'r2', zones: ['z2'] };

async function eventually<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function meshfed(fleet: LocalFleet, args: string[], extraEnv: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [meshfedBin(), ...args], { env: { ...process.env, ...fleet.cliEnv(), MESHFED_HUB: fleet.hubUrl, ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

async function csr(uri: string, ca: boolean): Promise<string> {
  return createCsr(await generateKeyPair(), { uris: [uri], ca });
}

const hello = (c: ClusterSpec) => ({ cluster: c.name, network: c.network, region: c.region, zones: c.zones });

describe('mTLS with join tokens', () => {
  let fleet: LocalFleet;
  /** Every join token made in this suite: none may show up in a log. */
  const tokens: string[] = [];
  const trustStatus = async (): Promise<TrustStatus> => (await (await fleet.hubFetch(`/api/v1alpha1/trust`)).json()) as TrustStatus;
  const bundle = async () => readFile(join(fleet.dir, 'hub', 'ca', 'bundle.pem'), 'utf8');

  before(async () => {
    fleet = await LocalFleet.create();
    await fleet.startHub();
    await fleet.apply([{ apiVersion: API_VERSION, kind: 'Mesh', metadata: { name: 'default' }, spec: { trustDomain: TD } }]);
    const t = await fleet.addCluster(A);
    tokens.push(t.token!);
    await fleet.startAgent(A);
    await fleet.waitAgent('east', (s) => s.hub.connected && s.trust.intermediate !== undefined);
  });

  after(async () => {
    await fleet?.close();
  });

  test('an agent joins with its token and connects with mTLS; keys stay owner-only (the hub keeps none in files)', async () => {
    const s = await fleet.agentStatus('east');
    assert.equal(s.trust.channel, 'mtls');
    assert.equal(s.trust.agentCert?.spiffeId, agentId(TD, 'east'));
    assert.equal(s.trust.intermediate?.spiffeId, intermediateId(TD, 'east'));
    assert.deepEqual(
      s.trust.bundle.map((b) => b.fingerprint),
      [fingerprint(await bundle())],
    );
    const trustDir = join(fleet.agent('east').dataDir, 'trust');
    assert.equal((await stat(trustDir)).mode & 0o777, 0o700);
    for (const f of ['channel.pem', 'intermediate.pem']) assert.equal((await stat(join(trustDir, f))).mode & 0o777, 0o600, f);
    // The hub's root key is sealed in its store with the state key, generated owner-only on the first start.
    assert.equal((await stat(join(fleet.dir, 'hub', 'state.key'))).mode & 0o777, 0o600);
    assert.deepEqual(
      (await readdir(join(fleet.dir, 'hub', 'ca'))).filter((f) => f.endsWith('.pem') && f !== 'bundle.pem'),
      [],
      'no key file beside the bundle',
    );
  });

  test('the channel refuses plaintext, certificate-less, foreign, rogue and mismatched clients, naming why', async () => {
    const roots = await bundle();
    // Plaintext to a TLS port: no Welcome, the call fails.
    const plain = new RawSession(fleet.hubAgentAddr, undefined, hello(A));
    await plain.closed();
    assert.ok(plain.error, 'the plaintext call failed');
    assert.ok(!plain.messages.some((m) => m.welcome));
    plain.close();

    const refusal = async (creds: ReturnType<typeof agentCredentials>, h: ReturnType<typeof hello>, code: string, re: RegExp) => {
      const s = new RawSession(fleet.hubAgentAddr, creds, h);
      const m = await s.next((x) => !!x.rejected || !!x.welcome);
      s.close();
      assert.ok(m.rejected, `expected a rejection, got ${JSON.stringify(Object.keys(m))}`);
      assert.equal(m.rejected.code, code);
      assert.match(m.rejected.message, re);
    };
    // TLS without a client certificate (what a joining agent has).
    await refusal(agentCredentials(roots), hello(A), 'Unauthenticated', /no valid client certificate/);
    // A certificate from another root.
    const foreign = await createRootCa({ trustDomain: TD, validityDays: 1 });
    const fk = await generateKeyPair();
    const fc = await signCsr(foreign, { csrPem: await createCsr(fk, { uris: [agentId(TD, 'east')], ca: false }), profile: 'agent', expectedId: agentId(TD, 'east'), ttlSeconds: 600 });
    await refusal(agentCredentials(roots, { keyPem: fk.privateKeyPem, certChainPem: fc.chainPem }), hello(A), 'Unauthenticated', /no valid client certificate/);
    // A cluster's intermediate CA minting an agent certificate for another cluster: it chains to the root, yet is refused.
    const inter = readCredential(fleet.agent('east').dataDir, 'intermediate.pem');
    const rk = await generateKeyPair();
    const rogue = await signCsr(
      { certPem: splitPem(inter.chainPem)[0]!, keyPem: inter.keyPem, chainPem: '', rootsPem: roots },
      { csrPem: await createCsr(rk, { uris: [agentId(TD, 'west')], ca: false }), profile: 'agent', expectedId: agentId(TD, 'west'), ttlSeconds: 600 },
    );
    await refusal(agentCredentials(roots, { keyPem: rk.privateKeyPem, certChainPem: rogue.chainPem }), hello(B), 'Unauthenticated', /not issued by this hub's mesh CA/);
    // east's own certificate, saying it is west.
    const own = readCredential(fleet.agent('east').dataDir, 'channel.pem');
    await refusal(agentCredentials(roots, { keyPem: own.keyPem, certChainPem: own.chainPem }), hello(B), 'IdentityMismatch', /certificate is for cluster "east".*Hello names cluster "west"/);
  });

  test('expired, reused, unknown and malformed join tokens are refused with clear errors', async () => {
    const short = await fleet.addCluster(B, { ttl: '1s' });
    tokens.push(short.token!);
    await new Promise((r) => setTimeout(r, 1300));
    await fleet.startAgent(B, { waitReady: false });
    await fleet.waitAgent('west', (s) => /join refused by the hub: join token [0-9a-f]{16} expired at/.test(s.hub.lastError ?? ''));
    const st = await meshfed(fleet, ['status', '--agent', fleet.agent('west').apiUrl], { MESHFED_AGENT_TOKEN: fleet.agentToken('west') });
    assert.match(st.stdout, /DISCONNECTED: join refused by the hub: join token [0-9a-f]{16} expired at .*create a new one \(meshfed cluster add west/);
    await fleet.stopAgent('west');

    const roots = await bundle();
    const used = parseJoinToken(fleet.tokens.get('east')!);
    const req = { tokenId: used.id, tokenSecret: used.secret, cluster: 'east', csrPem: await csr(agentId(TD, 'east'), false) };
    let r = await rawJoin(fleet.hubAgentAddr, roots, req);
    assert.equal(r.err?.code, 7 /* PERMISSION_DENIED */);
    assert.match(r.err!.details, /join token [0-9a-f]{16} was already used at .*single-use/);
    r = await rawJoin(fleet.hubAgentAddr, roots, { ...req, tokenId: 'ffffffffffffffff' });
    assert.equal(r.err?.code, 16 /* UNAUTHENTICATED */);
    assert.match(r.err!.details, /join token ffffffffffffffff is not known to this hub/);

    await assert.rejects(fleet.startAgent(B, { joinToken: 'mfj1.nonsense', waitReady: false }), /join token is malformed/);
  });

  test('CSRs that are malformed, for another trust domain, of the wrong profile or for another cluster are refused', async () => {
    const roots = await bundle();
    const tokenText = await fleet.joinToken('west');
    tokens.push(tokenText);
    const t = parseJoinToken(tokenText);
    const join1 = async (csrPem: string) => rawJoin(fleet.hubAgentAddr, roots, { tokenId: t.id, tokenSecret: t.secret, cluster: 'west', csrPem });
    const refusedJoin = async (csrPem: string, re: RegExp) => {
      const r = await join1(csrPem);
      assert.equal(r.err?.code, 3 /* INVALID_ARGUMENT */, JSON.stringify(r.err?.details));
      assert.match(r.err!.details, re);
    };
    await refusedJoin('-----BEGIN CERTIFICATE REQUEST-----\nnope\n-----END CERTIFICATE REQUEST-----\n', /agent CSR refused: CSR is not a PEM PKCS#10/);
    await refusedJoin(await csr(agentId('evil.example', 'west'), false), /trust domain evil\.example is not the mesh's \(meshfed\.local\)/);
    await refusedJoin(await csr(agentId(TD, 'west'), true), /requests CA:TRUE; only cluster intermediates may be CAs/);
    await refusedJoin(await csr(agentId(TD, 'east'), false), /names cluster east; the requester is cluster west/);
    // Refusals did not use the token up.
    const key = await generateKeyPair();
    const ok = await join1(await createCsr(key, { uris: [agentId(TD, 'west')], ca: false }));
    assert.ok(ok.res, ok.err?.details);

    // Over the mTLS session of west: intermediate CSRs.
    const s = new RawSession(fleet.hubAgentAddr, agentCredentials(roots, { keyPem: key.privateKeyPem, certChainPem: ok.res.certChainPem }), hello(B));
    const bundleMsg = await s.next((m) => !!m.trustBundle || !!m.rejected);
    assert.ok(bundleMsg.trustBundle, JSON.stringify(bundleMsg));
    assert.equal(bundleMsg.trustBundle.trustDomain, TD);
    const refusedCsr = async (csrPem: string, re: RegExp) => {
      const from = s.messages.length;
      s.send({ intermediateCsr: { csrPem } });
      const m = await s.next((x: HubMessage) => !!x.csrRejected || !!x.intermediate, from);
      assert.ok(m.csrRejected, 'refused');
      assert.equal(m.csrRejected.what, 'intermediate');
      assert.match(m.csrRejected.message, re);
    };
    await refusedCsr('garbage', /intermediate CA CSR refused: CSR is not a PEM PKCS#10/);
    await refusedCsr(await csr(intermediateId('evil.example', 'west'), true), /trust domain evil\.example is not the mesh's/);
    await refusedCsr(await csr(intermediateId(TD, 'west'), false), /must request basicConstraints CA:TRUE/);
    await refusedCsr(await csr(intermediateId(TD, 'east'), true), /names cluster east; the requester is cluster west/);
    await refusedCsr(await csr(workloadLike('west'), true), /is not the requester's identity spiffe:\/\/meshfed\.local\/cluster\/west/);
    const from = s.messages.length;
    s.send({ intermediateCsr: { csrPem: await csr(intermediateId(TD, 'west'), true) } });
    const issued = await s.next((x) => !!x.intermediate || !!x.csrRejected, from);
    assert.ok(issued.intermediate, JSON.stringify(issued));
    verifyChain(splitPem(issued.intermediate.certChainPem)[0]!, [], splitPem(issued.intermediate.rootsPem));
    s.close();
    const west = (await trustStatus()).clusters.find((c) => c.cluster === 'west')!;
    assert.equal(west.intermediate?.spiffeId, intermediateId(TD, 'west'));
  });

  test('no intermediate or channel key reaches the hub (data dir, API, logs); no join token appears in a log', async () => {
    const keyLines = (pem: string) => pem.split('\n').filter((l) => l.length >= 40 && !l.startsWith('-----'));
    const secrets = [...keyLines(readCredential(fleet.agent('east').dataDir, 'intermediate.pem').keyPem), ...keyLines(readCredential(fleet.agent('east').dataDir, 'channel.pem').keyPem)];
    assert.ok(secrets.length >= 2);
    const files = async (dir: string): Promise<string[]> => {
      const out: string[] = [];
      for (const e of await readdir(dir, { withFileTypes: true })) {
        const p = join(dir, e.name);
        if (e.isDirectory()) out.push(...(await files(p)));
        else if (e.isFile()) out.push(p);
      }
      return out;
    };
    const hubFiles = await files(join(fleet.dir, 'hub'));
    // The trust state is in the hub's store; the root key too, sealed: no private key in any hub file.
    assert.ok(hubFiles.some((f) => f.endsWith('wal.jsonl')));
    assert.ok(hubFiles.some((f) => f.endsWith('state.key')));
    for (const f of hubFiles) {
      const text = await readFile(f, 'latin1');
      assert.ok(!text.includes('PRIVATE KEY'), `a private key in the hub's ${f}`);
      for (const k of secrets) assert.ok(!text.includes(k), `an agent key is in the hub's ${f}`);
    }
    for (const path of ['trust', 'clusters', 'agents', 'globalservices', 'proxies', 'meshes', 'workloads', 'services']) {
      const text = await (await fleet.hubFetch(`/api/v1alpha1/${path}`)).text();
      assert.ok(!text.includes('PRIVATE KEY'), `a private key in GET ${path}`);
      for (const k of secrets) assert.ok(!text.includes(k), `an agent key in GET ${path}`);
    }
    const logs = await files(fleet.logDir);
    assert.ok(logs.some((f) => f.endsWith('hub.log')) && logs.some((f) => f.endsWith('agent-east.log')));
    assert.ok(tokens.length >= 3);
    for (const f of logs) {
      const text = await readFile(f, 'utf8');
      assert.ok(!text.includes('PRIVATE KEY'), `a private key in ${f}`);
      for (const k of secrets) assert.ok(!text.includes(k), `an agent key in ${f}`);
      for (const t of tokens) assert.ok(!text.includes(parseJoinToken(t).secret), `a join token in ${f}`);
    }
  });

  test('an intermediate with a seconds-long TTL renews without a restart; one left to expire is a warning', async () => {
    const east = fleet.agent('east');
    const pid = east.child.proc.pid;
    await fleet.apply([{ apiVersion: API_VERSION, kind: 'Mesh', metadata: { name: 'default' }, spec: { trustDomain: TD, ca: { intermediateCertTtl: '4s', workloadCertTtl: '2s' } } }]);
    const serials = new Set<string>();
    await eventually(
      'three intermediates of 4 s',
      async () => {
        const i = (await fleet.agentStatus('east')).trust.intermediate!;
        if (Date.parse(i.notAfter) - Date.parse(i.notBefore) <= 10_000) serials.add(i.serial);
        return serials.size >= 3;
      },
      20_000,
    );
    assert.equal(east.child.proc.pid, pid);
    assert.equal(east.child.proc.exitCode, null, 'no restart');
    const s = await fleet.agentStatus('east');
    assert.ok(s.hub.connected);
    assert.ok(s.trust.issued.intermediates >= 3);
    const rec = (await trustStatus()).clusters.find((c) => c.cluster === 'east')!.intermediate!;
    assert.ok(Date.parse(rec.notAfter) - Date.parse(rec.issuedAt!) <= 4_000, JSON.stringify(rec));
    assert.ok(Date.parse(rec.nextRenewal!) > Date.parse(rec.issuedAt!));

    // The agent goes away: its intermediate expires and the hub says so.
    await fleet.stopAgent('east');
    await eventually('an expiry warning', async () => (await trustStatus()).warnings.some((w) => /cluster east: intermediate CA expired/.test(w)), 10_000);
    await fleet.startAgent(A);
    await eventually('a fresh intermediate', async () => !(await trustStatus()).warnings.some((w) => /cluster east/.test(w)), 10_000);

    // Back to the default lifetime: a TTL change re-issues.
    await fleet.apply([{ apiVersion: API_VERSION, kind: 'Mesh', metadata: { name: 'default' }, spec: { trustDomain: TD } }]);
    await fleet.waitAgent('east', (x) => !!x.trust.intermediate && Date.parse(x.trust.intermediate.notAfter) - Date.now() > 3_600_000);
  });

  test('root rotation: the new root reaches every bundle before it signs; activation re-issues; retirement leaves only it', async () => {
    await fleet.startAgent(B, { joinToken: await fleet.joinToken('west') });
    tokens.push(fleet.tokens.get('west')!);
    await fleet.waitAgent('west', (s) => s.hub.connected && !!s.trust.intermediate);
    const old = fingerprint(await bundle());
    const agents = ['east', 'west'];

    let r = await meshfed(fleet, ['trust', 'rotate-root']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /rotation:\s+new-root-in-bundle/);
    const fresh = (await trustStatus()).roots.find((x) => x.phase === 'bundle-only')!.fingerprint;
    for (const a of agents) {
      await fleet.waitAgent(a, (s) => s.trust.bundle.length === 2 && s.trust.rotationPhase === 'new-root-in-bundle');
      const s = await fleet.agentStatus(a);
      assert.equal(s.trust.intermediate?.issuer, old, `${a}: the old root still signs`);
    }

    r = await meshfed(fleet, ['trust', 'rotate-root', '--retire']);
    assert.equal(r.code, 5);
    assert.match(r.stderr, /the new root does not sign yet \(phase new-root-in-bundle\): run --activate first/);
    r = await meshfed(fleet, ['trust', 'rotate-root', '--activate']);
    assert.equal(r.code, 0, r.stderr);
    for (const a of agents) {
      await fleet.waitAgent(a, (s) => s.trust.intermediate?.issuer === fresh && s.trust.agentCert?.issuer === fresh && s.hub.connected);
    }
    const st = await trustStatus();
    assert.equal(st.rotation.phase, 'new-root-active');
    for (const a of agents) assert.equal(st.clusters.find((c) => c.cluster === a)!.intermediate?.root, fresh);

    r = await meshfed(fleet, ['trust', 'rotate-root', '--retire']);
    assert.equal(r.code, 0, r.stderr);
    for (const a of agents) await fleet.waitAgent(a, (s) => s.trust.bundle.length === 1 && s.trust.bundle[0]!.fingerprint === fresh);
    // A restarted hub presents a certificate of the new root; agents come back with theirs.
    await fleet.stopHub();
    await fleet.startHub();
    for (const a of agents) await fleet.waitAgent(a, (s) => s.hub.connected);

    r = await meshfed(fleet, ['trust', 'status']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /trust domain:\s+meshfed\.local/);
    assert.match(r.stdout, /rotation:\s+none/);
    assert.match(r.stdout, new RegExp(`${old.slice(0, 16)}\\s+retired`));
    assert.match(r.stdout, new RegExp(`${fresh.slice(0, 16)}\\s+active`));
    assert.match(r.stdout, new RegExp(`east\\s+connected\\s+[0-9A-F]{16}\\s+in \\d+d\\s+in \\d+d\\s+${fresh.slice(0, 16)}`));
    assert.match(r.stdout, /warnings: none/);
    r = await meshfed(fleet, ['trust', 'status', '-o', 'yaml']);
    const y = parseYaml(r.stdout) as TrustStatus;
    assert.deepEqual(y.workloads, []);
    assert.deepEqual(
      y.roots.map((x) => x.phase),
      ['retired', 'active'],
    );
    assert.equal(y.clusters.find((c) => c.cluster === 'west')?.agentCert?.root, fresh);
  });

  test('deleting a Cluster cuts its agent off, and a reconnect with its still-valid certificate is refused', async () => {
    const r = await fleet.hubFetch(`/api/v1alpha1/clusters/east`, { method: 'DELETE' });
    assert.equal(r.status, 200);
    await fleet.waitAgent('east', (s) => !s.hub.connected && /was deleted at the hub/.test(s.hub.lastError ?? ''));
    await fleet.stopAgent('east');
    await fleet.startAgent(A, { waitReady: false });
    await fleet.waitAgent('east', (s) => /hub rejected this agent \(Revoked\): cluster "east" was deleted at the hub at .*revoked/.test(s.hub.lastError ?? ''));
    const st = await trustStatus();
    assert.equal(
      st.clusters.find((c) => c.cluster === 'east'),
      undefined,
      'a deleted cluster is no longer listed',
    );
  });
});

function workloadLike(cluster: string): string {
  return `spiffe://${TD}/cluster/${cluster}/ns/default/sa/default`;
}

describe('--insecure-channel (development)', () => {
  let fleet: LocalFleet;
  before(async () => {
    fleet = await LocalFleet.create({ insecureChannel: true });
    await fleet.startHub();
  });
  after(async () => {
    await fleet?.close();
  });

  test('agents connect in plaintext without a token and still get their intermediate; Join is refused', async () => {
    const added = await fleet.addCluster(A);
    assert.equal(added.token, undefined);
    await fleet.startAgent(A);
    await fleet.waitAgent('east', (s) => s.hub.connected && !!s.trust.intermediate);
    const s = await fleet.agentStatus('east');
    assert.equal(s.trust.channel, 'insecure');
    assert.equal(s.trust.agentCert, undefined);
    assert.equal(s.trust.intermediate?.spiffeId, intermediateId(TD, 'east'));
    const hubLog = await readFile(join(fleet.logDir, 'hub.log'), 'utf8');
    assert.match(hubLog, /WARN .*THE AGENT CHANNEL IS INSECURE/);
    const st = (await (await fleet.hubFetch(`/api/v1alpha1/trust`)).json()) as TrustStatus;
    assert.equal(st.channel, 'insecure');
    assert.equal(st.clusters[0]?.intermediate?.spiffeId, intermediateId(TD, 'east'));
  });
});
