// The agent's trust module against a scripted hub session: when it asks for an
// intermediate (none, settings changed, signer changed, half-life), what it
// does with a refusal (status, retry when the bundle changes), what it accepts,
// and the renewal of its channel certificate at half-life.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { AgentTrust } from '../../src/agent/trust.js';
import { agentId, createCsr, createRootCa, generateKeyPair, intermediateId, signCsr, type CaMaterial } from '../../src/ca/index.js';
import type { AgentMessage, TrustBundle } from '../../src/channel/protocol.js';
import { writeFileDurable } from '../../src/util/files.js';

const TD = 'meshfed.local';
const dirs: string[] = [];
const stops: (() => void)[] = [];
after(async () => {
  for (const s of stops) s();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'meshfed-agent-trust-'));
  dirs.push(d);
  return d;
}

function bundleOf(root: CaMaterial, ttlMs = 3_600_000): TrustBundle {
  return { rootsPem: root.certPem, trustDomain: TD, signerPem: root.certPem, intermediateTtlMs: String(ttlMs), rotationPhase: 'none' };
}

/** A scripted session: what the agent sends, and a way to wait for it. */
function session(t: AgentTrust): { sent: AgentMessage[]; next: (pred: (m: AgentMessage) => boolean, timeoutMs?: number) => Promise<AgentMessage> } {
  const sent: AgentMessage[] = [];
  t.sessionStarted((m) => {
    sent.push(m);
    return true;
  });
  return {
    sent,
    async next(pred, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      let seen = 0;
      for (;;) {
        const m = sent.slice(seen).find(pred);
        if (m) {
          sent.splice(sent.indexOf(m), 1);
          return m;
        }
        seen = 0;
        if (Date.now() > deadline) throw new Error(`the agent sent no expected message; sent: ${JSON.stringify(sent.map((x) => Object.keys(x)))}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
  };
}

const settle = () => new Promise((r) => setTimeout(r, 100));

describe('agent trust', () => {
  it('asks for its intermediate, shows a refusal, asks again on a new bundle, and keeps what verifies', async () => {
    const root = await createRootCa({ trustDomain: TD, validityDays: 1 });
    const dir = await tempDir();
    const t = new AgentTrust({ cluster: 'east', dataDir: dir, hubAddress: '127.0.0.1:1', insecureChannel: true });
    stops.push(() => t.stop());
    await t.load();
    assert.equal(t.joinPlan(), 'no');
    assert.equal(t.current(), undefined);
    let changes = 0;
    t.onChange(() => changes++);
    const s = session(t);
    t.onHubMessage({ trustBundle: bundleOf(root) });
    const first = await s.next((m) => !!m.intermediateCsr);
    assert.ok(first.intermediateCsr!.csrPem.includes('CERTIFICATE REQUEST'));
    assert.equal(changes, 1, 'the bundle arrived');

    t.onHubMessage({ csrRejected: { what: 'intermediate', message: 'intermediate CA CSR refused: because' } });
    await settle();
    assert.equal(t.status().intermediateError, 'intermediate CA CSR refused: because');
    assert.equal(s.sent.length, 0, 'no retry right after a refusal');

    // A new bundle may fix it: the agent asks again.
    t.onHubMessage({ trustBundle: { ...bundleOf(root), rotationPhase: 'none', intermediateTtlMs: '7200000' } });
    await s.next((m) => !!m.intermediateCsr);
    // An answer for another key is refused; the right one is kept.
    const other = await signCsr(root, {
      csrPem: await createCsr(await generateKeyPair(), { uris: [intermediateId(TD, 'east')], ca: true }),
      profile: 'intermediate',
      expectedId: intermediateId(TD, 'east'),
      ttlSeconds: 600,
    });
    t.onHubMessage({ intermediate: { certChainPem: other.chainPem, rootsPem: root.certPem } });
    await settle();
    assert.match(t.status().intermediateError ?? '', /not for this agent's key/);
    assert.equal(t.current(), undefined);
    // Re-asked after the unusable answer? Not until the pending one times out; answer the second CSR properly.
    t.onHubMessage({ trustBundle: { ...bundleOf(root), intermediateTtlMs: '7200000', rotationPhase: 'x' } });
    const third = await s.next((m) => !!m.intermediateCsr);
    const ok = await signCsr(root, { csrPem: third.intermediateCsr!.csrPem, profile: 'intermediate', expectedId: intermediateId(TD, 'east'), ttlSeconds: 7200 });
    t.onHubMessage({ intermediate: { certChainPem: ok.chainPem, rootsPem: root.certPem } });
    await settle();
    const cur = t.current();
    assert.ok(cur, 'an intermediate');
    assert.equal(cur.trustDomain, TD);
    assert.equal(cur.ca.certPem, ok.certPem);
    assert.equal(cur.ca.chainPem, '', 'signed by the root: nothing between');
    assert.equal(cur.ca.rootsPem, root.certPem);
    assert.equal(t.status().intermediateError, undefined);
    assert.equal(t.status().intermediate?.spiffeId, intermediateId(TD, 'east'));
    assert.equal((await stat(join(dir, 'trust', 'intermediate.pem'))).mode & 0o777, 0o600);
    assert.ok(changes >= 2);

    // The Mesh's TTL changes: re-issue. The signer changes: re-issue.
    t.onHubMessage({ trustBundle: bundleOf(root, 3_600_000) });
    await s.next((m) => !!m.intermediateCsr);
    t.sessionEnded();

    // A restart loads it from disk.
    const again = new AgentTrust({ cluster: 'east', dataDir: dir, hubAddress: '127.0.0.1:1', insecureChannel: true });
    stops.push(() => again.stop());
    await again.load();
    assert.equal(again.current()?.ca.certPem, ok.certPem);
  });

  it('renews its channel certificate at half-life, and a new token means joining again', async () => {
    const root = await createRootCa({ trustDomain: TD, validityDays: 1 });
    const dir = await tempDir();
    const key = await generateKeyPair();
    const cert = await signCsr(root, { csrPem: await createCsr(key, { uris: [agentId(TD, 'east')], ca: false }), profile: 'agent', expectedId: agentId(TD, 'east'), ttlSeconds: 3 });
    await writeFileDurable(join(dir, 'trust', 'channel.pem'), key.privateKeyPem + '\n' + cert.chainPem, 0o600);
    await writeFileDurable(join(dir, 'trust', 'bundle.pem'), root.certPem, 0o644);
    await writeFileDurable(join(dir, 'trust', 'state.json'), JSON.stringify({ trustDomain: TD, joinedWithToken: '0123456789abcdef', received: { channel: new Date().toISOString() } }), 0o600);
    const t = new AgentTrust({ cluster: 'east', dataDir: dir, hubAddress: '127.0.0.1:1', insecureChannel: false });
    stops.push(() => t.stop());
    await t.load();
    assert.equal(t.joinPlan(), 'no');
    const v0 = t.channelCredentials()!.version;
    const s = session(t);
    t.onHubMessage({ trustBundle: bundleOf(root) });
    await s.next((m) => !!m.intermediateCsr);
    const renewal = await s.next((m) => !!m.agentCertCsr, 4000);
    const fresh = await signCsr(root, { csrPem: renewal.agentCertCsr!.csrPem, profile: 'agent', expectedId: agentId(TD, 'east'), ttlSeconds: 3600 });
    t.onHubMessage({ agentCert: { certChainPem: fresh.chainPem, rootsPem: root.certPem } });
    await settle();
    assert.ok(t.channelCredentials()!.version > v0, 'new credentials for the next connection');
    assert.equal(t.status().agentCert?.serial, new X509Certificate(fresh.certPem).serialNumber);

    // A token with another id than the one it joined with: join again (e.g. the Cluster was re-added).
    const token = `mfj1.fedcba9876543210.${'A'.repeat(43)}.${'0'.repeat(64)}`;
    const rejoin = new AgentTrust({ cluster: 'east', dataDir: dir, hubAddress: '127.0.0.1:1', insecureChannel: false, joinToken: token });
    await rejoin.load();
    assert.equal(rejoin.joinPlan(), 'join');
    const same = new AgentTrust({ cluster: 'east', dataDir: await tempDir(), hubAddress: '127.0.0.1:1', insecureChannel: false });
    await same.load();
    const plan = same.joinPlan();
    assert.ok(plan instanceof Error && /no join token and no agent certificate/.test(plan.message));
  });
});
