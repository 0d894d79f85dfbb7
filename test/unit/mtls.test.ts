// mTLS in xDS and workload identities: what the translation emits per mode
// (checked against Envoy's protos by the strict encoder: no Envoy binary runs
// here), the bootstrap's certificate provider, and the agent's identity service
// (tokens, whoami, signing) with a real CA.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { WorkloadIdentity } from '../../src/agent/workload-identity.js';
import { MeshfedError } from '../../src/util/errors.js';
import { certInfo, createCsr, createRootCa, generateKeyPair, intermediateId, signCsr, workloadId, type CaMaterial } from '../../src/ca/index.js';
import { DOWNSTREAM_TLS_TYPE, translateServerListener, translateService, UPSTREAM_TLS_TYPE } from '../../src/translate/xds/index.js';
import { grpcBootstrap } from '../../src/xds/bootstrap.js';
import { encodeResource } from '../../src/xds/proto.js';
import { helloworldView } from '../helpers/mesh-fixture.js';
import { CLUSTER_TYPE } from '../../src/xdsapi/index.js';
import { type SecuritySettings } from '../../src/api/index.js';
import { policySet } from '../../src/registry.js';

const TD = 'meshfed.local';
const view = helloworldView([
  { cluster: 'cluster1', version: 'v1', address: '10.1.0.1', port: 50051 },
  { cluster: 'cluster2', version: 'v2', address: '10.2.0.1', port: 50051 },
]);
const hw = view.services.find((s) => s.name === 'helloworld')!;
const strict: SecuritySettings = { trustDomain: TD, mode: 'STRICT', serviceModes: new Map() };

function clusters(sec: SecuritySettings | undefined) {
  const res = translateService(hw, { cluster: 'cluster1', locality: { region: 'us-east1', zones: ['us-east1-a'] }, policies: policySet([]), ...(sec ? { security: sec } : {}) }).resources;
  return res.filter((r) => r.typeUrl === CLUSTER_TYPE);
}

describe('mTLS resources', () => {
  it('STRICT: every client Cluster verifies the exact SPIFFE IDs of the workloads behind it, and encodes as Envoy v3', () => {
    const cs = clusters(strict);
    assert.ok(cs.length >= 3, 'global + per-cluster backends');
    for (const c of cs) {
      const ts = c.message.transport_socket as { typed_config: Record<string, unknown> };
      assert.equal(ts.typed_config['@type'], UPSTREAM_TLS_TYPE, c.name);
      encodeResource(c); // valid against Envoy's protos (strict: unknown or mistyped fields throw)
      const tlsCtx = ts.typed_config as { common_tls_context: { validation_context: { match_subject_alt_names: { exact: string }[] } } };
      const sans = tlsCtx.common_tls_context.validation_context.match_subject_alt_names.map((m) => m.exact);
      if (c.name.includes('helloworld.sample.cluster2')) assert.deepEqual(sans, [workloadId(TD, 'cluster2', 'sample', 'default')]);
      else if (c.name === 'outbound|8080||helloworld.sample') assert.deepEqual(sans, [workloadId(TD, 'cluster1', 'sample', 'default'), workloadId(TD, 'cluster2', 'sample', 'default')]);
    }
  });
  it('PERMISSIVE, DISABLE, a per-service override and no security settings: plaintext clusters', () => {
    for (const sec of [
      undefined,
      { ...strict, mode: 'DISABLE' as const },
      { ...strict, mode: 'PERMISSIVE' as const },
      { ...strict, serviceModes: new Map([['sample/helloworld', 'DISABLE' as const]]) },
    ]) {
      for (const c of clusters(sec)) assert.equal(c.message.transport_socket, undefined, `${c.name} with ${JSON.stringify(sec?.mode)}`);
    }
  });
  it('server listeners require client certificates in STRICT only, and change the connection manager with the mode', () => {
    const name = 'grpc/server?xds.resource.listening_address=10.1.0.1:50051';
    const tls = translateServerListener(name, () => 'STRICT')!;
    const chain = (tls.message.filter_chains as Record<string, unknown>[])[0]!;
    const ts = chain.transport_socket as { typed_config: Record<string, unknown> };
    assert.equal(ts.typed_config['@type'], DOWNSTREAM_TLS_TYPE);
    assert.deepEqual(ts.typed_config.require_client_certificate, { value: true });
    encodeResource(tls);
    const plain = translateServerListener(name, () => 'PERMISSIVE')!;
    const pchain = (plain.message.filter_chains as Record<string, unknown>[])[0]!;
    assert.equal(pchain.transport_socket, undefined);
    assert.notDeepEqual(JSON.stringify(pchain.filters), JSON.stringify(chain.filters), 'grpc-js-xds ignores a TLS toggle when the filters are identical');
  });
  it('the gRPC bootstrap names the file_watcher provider the TLS contexts refer to', () => {
    const b = grpcBootstrap({ xdsServer: '127.0.0.1:1', nodeId: 'c~n~w', cluster: 'c', locality: { region: '', zone: '' }, certDir: '/run/meshfed/' }) as Record<string, unknown>;
    assert.deepEqual(b.certificate_providers, {
      meshfed: {
        plugin_name: 'file_watcher',
        config: { certificate_file: '/run/meshfed/cert.pem', private_key_file: '/run/meshfed/key.pem', ca_certificate_file: '/run/meshfed/ca.pem', refresh_interval: '1s' },
      },
    });
  });
});

describe('workload identity on the agent', () => {
  async function setup(): Promise<{ wi: WorkloadIdentity; dir: string; ca: CaMaterial; set: (c: CaMaterial | undefined) => void }> {
    const root = await createRootCa({ trustDomain: TD, validityDays: 1 });
    const kp = await generateKeyPair();
    const inter = await signCsr(root, {
      csrPem: await createCsr(kp, { uris: [intermediateId(TD, 'cluster1')], ca: true }),
      profile: 'intermediate',
      expectedId: intermediateId(TD, 'cluster1'),
      ttlSeconds: 3600,
    });
    let ca: CaMaterial | undefined = { certPem: inter.certPem, keyPem: kp.privateKeyPem, chainPem: '', rootsPem: root.rootsPem };
    const dir = mkdtempSync(path.join(tmpdir(), 'meshfed-wi-'));
    const wi = await WorkloadIdentity.open(dir, 'cluster1', { current: () => (ca ? { ca, trustDomain: TD } : undefined), onChange: () => undefined }, () => ({
      trustDomain: TD,
      workloadCertTtlMs: 60_000,
    }));
    return { wi, dir, ca: ca!, set: (c) => (ca = c) };
  }
  it('a token names one identity; only its hash is stored; the CSR for it is signed and chains to the root', async () => {
    const { wi, dir, ca } = await setup();
    const t = await wi.createToken({ namespace: 'rebels', serviceAccount: 'x-wing' });
    assert.equal(t.spiffeId, workloadId(TD, 'cluster1', 'rebels', 'x-wing'));
    assert.ok(!readFileSync(path.join(dir, 'identity-tokens.json'), 'utf8').includes(t.token), 'the token itself is never stored');
    const auth = `Bearer ${t.token}`;
    assert.equal(wi.whoami(auth).spiffeId, t.spiffeId);
    const kp = await generateKeyPair();
    const r = await wi.sign(auth, await createCsr(kp, { uris: [t.spiffeId], ca: false }));
    assert.deepEqual(certInfo(r.certChainPem).uris, [t.spiffeId]);
    assert.equal(r.caPem, ca.rootsPem);
    assert.equal(wi.issuedCertificates()[0]!.spiffeId, t.spiffeId);
    // The same token cannot get another service account's certificate.
    const other = await createCsr(kp, { uris: [workloadId(TD, 'cluster1', 'empire', 'tie')], ca: false });
    await assert.rejects(wi.sign(auth, other), (e: unknown) => e instanceof MeshfedError && e.httpStatus === 400 && /is not the requester's identity/.test(e.message));
    // Reopened (agent restart): the token still works.
    const again = await WorkloadIdentity.open(dir, 'cluster1', { current: () => ({ ca, trustDomain: TD }), onChange: () => undefined }, () => ({ trustDomain: TD, workloadCertTtlMs: 60_000 }));
    assert.equal(again.whoami(auth).spiffeId, t.spiffeId);
  });
  it('refuses a missing, unknown or expired token, and answers 503 while the cluster has no intermediate', async () => {
    const { wi, set } = await setup();
    assert.throws(
      () => wi.whoami(undefined),
      (e: unknown) => e instanceof MeshfedError && e.httpStatus === 401 && /Bearer/.test(e.message),
    );
    assert.throws(
      () => wi.whoami('Bearer nope'),
      (e: unknown) => e instanceof MeshfedError && e.httpStatus === 401 && /not recognised/.test(e.message),
    );
    const t = await wi.createToken({ namespace: 'a', serviceAccount: 'b', ttlSeconds: 0.05 });
    await new Promise((r) => setTimeout(r, 80));
    assert.throws(
      () => wi.whoami(`Bearer ${t.token}`),
      (e: unknown) => e instanceof MeshfedError && e.httpStatus === 401 && /expired/.test(e.message),
    );
    await assert.rejects(wi.createToken({ namespace: 'A B', serviceAccount: 'b' }), /namespace/);
    set(undefined);
    assert.throws(
      () => wi.bundle(),
      (e: unknown) => e instanceof MeshfedError && e.httpStatus === 503 && /no intermediate CA yet/.test(e.message),
    );
  });
});
