// Nobody gets in without a credential, against real processes: every hub and
// agent route but health answers 401 without one; wrong, expired and revoked
// tokens answer 401 (one message); a non-admin token is 403 on writes and
// nothing is written; cross-site requests (text/plain, a foreign Origin, a
// foreign Host) are refused and nothing is written; failed authentications
// are rate-limited; the admin config is 0600 and its token is never logged;
// --insecure-api refuses a non-loopback address; the CLI exits 6 on a denial.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { request as httpsRequest } from 'node:https';
import { API_VERSION } from '../../src/api/index.js';
import { createCsr, createRootCa, generateKeyPair, signCsr, userId } from '../../src/ca/index.js';
import { apiFetch } from '../../src/cli/http.js';
import { LocalFleet, clusterObject, type ClusterSpec } from '../../src/demo/fleet.js';
import { freePort, meshfedBin } from '../../src/demo/processes.js';

const A: ClusterSpec = { name: 'east', network: 'n1', region: 'r1', zones: ['z1'] };
let fleet: LocalFleet;

/** Every hub route (method, path, body), as the router lists them. */
const HUB_ROUTES: [string, string, string?][] = [
  ['GET', '/api/v1alpha1/clusters'],
  ['GET', '/api/v1alpha1/clusters/east'],
  ['GET', '/api/v1alpha1/workloads?watch=1'],
  ['POST', '/api/v1alpha1/apply', '[]'],
  ['DELETE', '/api/v1alpha1/clusters/east'],
  ['GET', '/api/v1alpha1/globalservices'],
  ['GET', '/api/v1alpha1/agents'],
  ['GET', '/api/v1alpha1/hub'],
  ['POST', '/api/v1alpha1/hub/gc', '{}'],
  ['GET', '/api/v1alpha1/proxies'],
  ['POST', '/api/v1alpha1/plan', '[]'],
  ['POST', '/api/v1alpha1/clusters/east/join-token', '{}'],
  ['GET', '/api/v1alpha1/trust'],
  ['POST', '/api/v1alpha1/trust/rotate-root', '{"step":"add"}'],
  ['POST', '/api/v1alpha1/explain', '{}'],
  ['POST', '/api/v1alpha1/auth/tokens', '{"user":"x"}'],
  ['GET', '/api/v1alpha1/auth/tokens'],
  ['DELETE', '/api/v1alpha1/auth/tokens/0123456789abcdef'],
  ['POST', '/api/v1alpha1/auth/certificates', '{"user":"x"}'],
  ['GET', '/api/v1alpha1/auth/certificates'],
  ['DELETE', '/api/v1alpha1/auth/certificates/0123456789abcdef'],
  ['GET', '/api/v1alpha1/auth/whoami'],
  ['GET', '/api/v1alpha1/nosuchthing'],
];

const AGENT_ROUTES: [string, string, string?][] = [
  ['POST', '/v1/workloads', '{"namespace":"a","service":"b","address":"10.0.0.1:80"}'],
  ['DELETE', '/v1/workloads?address=10.0.0.1:80'],
  ['GET', '/v1/workloads'],
  ['GET', '/v1/status'],
  ['GET', '/v1/services'],
  ['GET', '/v1/proxies'],
  ['GET', '/v1/proxies/raw'],
  ['POST', '/v1/gc', '{}'],
  ['GET', '/v1/bootstrap?namespace=a&name=b'],
  ['POST', '/v1/identity/tokens', '{"namespace":"kube-system","serviceAccount":"cluster-admin"}'],
  ['GET', '/v1/identity/tokens'],
  ['GET', '/v1/identity/certificates'],
  ['POST', '/v1/auth/tokens', '{"namespace":"a"}'],
  ['GET', '/v1/nosuchthing'],
];

const revision = async (): Promise<number> => ((await (await fleet.hubFetch('/healthz', { token: '' })).json()) as { revision: number }).revision;

before(async () => {
  fleet = await LocalFleet.create();
  await fleet.startHub();
  await fleet.apply([clusterObject(A)]);
  await fleet.startAgent(A);
  // The hub's trust state is in its store: once the agent has its intermediate, nothing but requests writes.
  await fleet.waitAgent('east', (s) => s.hub.connected && s.trust.intermediate !== undefined);
});

after(async () => {
  await fleet?.close();
});

test('the first start wrote one admin credential: a 0600 CLI config, never logged', async () => {
  const file = join(fleet.hubDataDir, 'admin.meshfed.yaml');
  assert.equal(statSync(file).mode & 0o777, 0o600);
  const text = readFileSync(file, 'utf8');
  assert.match(text, /current-context: admin/);
  assert.match(text, new RegExp(`hub: ${fleet.hubUrl.replace(/[.]/g, '\\.')}`));
  assert.match(text, /BEGIN CERTIFICATE/);
  assert.ok(fleet.hubUrl.startsWith('https://'));
  const log = readFileSync(join(fleet.logDir, 'hub.log'), 'utf8');
  assert.ok(!log.includes(fleet.adminToken), 'the admin token is in the hub log');
  assert.match(log, /wrote the admin credential.*admin\.meshfed\.yaml/);
  const agentToken = join(fleet.agent('east').dataDir, 'agent-admin.token');
  assert.equal(statSync(agentToken).mode & 0o777, 0o600);
  assert.ok(!readFileSync(join(fleet.logDir, 'agent-east.log'), 'utf8').includes(fleet.agentToken('east')));
});

test('without a credential every hub and agent route but health answers 401, and nothing is written', async () => {
  const rev = await revision();
  assert.equal((await fleet.hubFetch('/healthz', { token: '' })).status, 200);
  for (const [method, path, body] of HUB_ROUTES) {
    const r = await fleet.hubFetch(path, { method, token: '', ...(body ? { body } : {}) });
    assert.equal(r.status, 401, `${method} ${path}`);
    const b = (await r.json()) as { reason: string };
    assert.equal(b.reason, 'Unauthenticated', `${method} ${path}`);
  }
  assert.equal(await revision(), rev);
  assert.equal((await fleet.agentFetch('east', '/healthz', { token: '' })).status, 200);
  assert.equal((await fleet.agentFetch('east', '/readyz', { token: '' })).status, 200);
  for (const [method, path, body] of AGENT_ROUTES) {
    const r = await fleet.agentFetch('east', path, { method, token: '', ...(body ? { body } : {}) });
    assert.equal(r.status, 401, `agent ${method} ${path}`);
  }
  // The hub's token is not the agent's credential, nor the other way round.
  assert.equal((await fleet.agentFetch('east', '/v1/status', { token: fleet.adminToken })).status, 401);
  assert.equal((await fleet.hubFetch('/api/v1alpha1/clusters', { token: fleet.agentToken('east') })).status, 401);
});

test('a wrong, expired or revoked token answers the same 401', async () => {
  const answers: string[] = [];
  const bad = async (token: string) => {
    const r = await fleet.hubFetch('/api/v1alpha1/clusters', { token });
    assert.equal(r.status, 401, token.slice(0, 22));
    answers.push(((await r.json()) as { error: string }).error);
  };
  const [, id] = fleet.adminToken.split('.');
  await bad(`mft1.${id}.${'A'.repeat(43)}`); // the right id, a wrong secret
  await bad(`mft1.0123456789abcdef.${'A'.repeat(43)}`); // an unknown id
  await bad('garbage');
  const mk = async (ttl: string) => {
    const r = await fleet.hubFetch('/api/v1alpha1/auth/tokens', { method: 'POST', body: JSON.stringify({ user: 'ci', groups: ['meshfed:admins'], ttl }) });
    assert.equal(r.status, 201);
    return (await r.json()) as { token: string; id: string };
  };
  const short = await mk('1s');
  assert.equal((await fleet.hubFetch('/api/v1alpha1/clusters', { token: short.token })).status, 200);
  await new Promise((r) => setTimeout(r, 1200));
  await bad(short.token);
  const revoked = await mk('1h');
  assert.equal((await fleet.hubFetch('/api/v1alpha1/clusters', { token: revoked.token })).status, 200);
  assert.equal((await fleet.hubFetch(`/api/v1alpha1/auth/tokens/${revoked.id}`, { method: 'DELETE' })).status, 200);
  await bad(revoked.token);
  assert.equal(new Set(answers).size, 1, `401 messages differ: ${answers.join(' | ')}`);
  const list = (await (await fleet.hubFetch('/api/v1alpha1/auth/tokens')).json()) as { items: { id: string; state: string; hash?: string }[] };
  assert.equal(list.items.find((t) => t.id === revoked.id)?.state, 'revoked');
  assert.ok(list.items.every((t) => t.hash === undefined));
});

test('a non-admin token reads nothing and writes nothing (403 naming the permission)', async () => {
  const r = await fleet.hubFetch('/api/v1alpha1/auth/tokens', { method: 'POST', body: JSON.stringify({ user: 'alice', groups: ['dev'], ttl: '1h' }) });
  const { token } = (await r.json()) as { token: string };
  const rev = await revision();
  const apply = await fleet.hubFetch('/api/v1alpha1/apply', {
    method: 'POST',
    token,
    body: JSON.stringify([{ apiVersion: API_VERSION, kind: 'Cluster', metadata: { name: 'rogue' }, spec: { network: 'n', region: 'r', zones: ['z'] } }]),
  });
  assert.equal(apply.status, 403);
  assert.match(((await apply.json()) as { error: string }).error, /user:alice may not create Cluster rogue/);
  for (const [method, path, body] of [
    ['POST', '/api/v1alpha1/clusters/east/join-token', '{}'],
    ['POST', '/api/v1alpha1/trust/rotate-root', '{"step":"add"}'],
    ['DELETE', '/api/v1alpha1/clusters/east'],
    ['POST', '/api/v1alpha1/auth/tokens', '{"user":"alice","groups":["meshfed:admins"]}'],
  ] as const) {
    assert.equal((await fleet.hubFetch(path, { method, token, ...(body ? { body } : {}) })).status, 403, `${method} ${path}`);
  }
  assert.equal((await fleet.hubFetch('/api/v1alpha1/clusters', { token })).status, 403);
  assert.equal(await revision(), rev);
  assert.equal((await fleet.hubFetch('/api/v1alpha1/clusters/east')).status, 200);
  // Every denial is in the audit log, queryable, naming who, what and why.
  const audit = (await (await fleet.hubFetch('/api/v1alpha1/audit?outcome=denied&limit=100')).json()) as { items: { who: string; verb: string; kind: string; object: string; reason?: string }[] };
  const rogue = audit.items.find((r) => r.who === 'user:alice' && r.verb === 'create' && r.kind === 'Cluster');
  assert.ok(rogue, `no denied create of Cluster by user:alice in ${JSON.stringify(audit.items.map((r) => [r.who, r.verb, r.kind]))}`);
  assert.equal(rogue.object, 'rogue');
  assert.match(rogue.reason ?? '', /no role allows it/);
  assert.ok(audit.items.some((r) => r.who === 'user:alice' && r.verb === 'rotate-root'));
  const chain = (await (await fleet.hubFetch('/api/v1alpha1/audit/verify')).json()) as { ok: boolean; records: number };
  assert.equal(chain.ok, true);
});

test('cross-site requests are refused and nothing is written', async () => {
  const rev = await revision();
  const cluster = JSON.stringify([{ apiVersion: API_VERSION, kind: 'Cluster', metadata: { name: 'csrf' }, spec: { network: 'n', region: 'r', zones: ['z'] } }]);
  const plain = await fleet.hubFetch('/api/v1alpha1/apply', { method: 'POST', body: cluster, headers: { 'content-type': 'text/plain' } });
  assert.equal(plain.status, 403);
  assert.match(((await plain.json()) as { error: string }).error, /Content-Type application\/json/);
  for (const type of ['application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) {
    assert.equal((await fleet.hubFetch('/api/v1alpha1/apply', { method: 'POST', body: cluster, headers: { 'content-type': type } })).status, 403, type);
  }
  const foreign = await fleet.hubFetch('/api/v1alpha1/apply', { method: 'POST', body: cluster, headers: { origin: 'https://evil.example' } });
  assert.equal(foreign.status, 403);
  assert.equal(((await foreign.json()) as { reason: string }).reason, 'CrossSite');
  // DNS rebinding: the right address under a foreign name (TLS verified as localhost).
  const hostStatus = await new Promise<number>((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port: Number(new URL(fleet.hubUrl).port),
        path: '/api/v1alpha1/apply',
        method: 'POST',
        ca: fleet.hubCa()!,
        servername: 'localhost',
        headers: { host: 'evil.example', authorization: `Bearer ${fleet.adminToken}`, 'content-type': 'application/json' },
      },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('error', reject);
    req.end(cluster);
  });
  assert.equal(hostStatus, 403);
  assert.equal(await revision(), rev);
  // The hub's own origin is fine.
  const own = await fleet.hubFetch('/api/v1alpha1/clusters', { headers: { origin: fleet.hubUrl } });
  assert.equal(own.status, 200);
});

test('the agent: a namespace token mints identity tokens for its namespace only; identity tokens expire', async () => {
  const r = await fleet.agentFetch('east', '/v1/auth/tokens', { method: 'POST', body: JSON.stringify({ namespace: 'sample', ttl: '1h' }) });
  assert.equal(r.status, 201);
  const { token } = (await r.json()) as { token: string };
  const mint = (ns: string, sa: string) => fleet.agentFetch('east', '/v1/identity/tokens', { method: 'POST', token, body: JSON.stringify({ namespace: ns, serviceAccount: sa }) });
  const ok = await mint('sample', 'helloworld');
  assert.equal(ok.status, 201);
  assert.ok(((await ok.json()) as { expires?: string }).expires, 'an identity token without expiry');
  assert.equal((await mint('kube-system', 'cluster-admin')).status, 403);
  const reg = (ns: string) => fleet.agentFetch('east', '/v1/workloads', { method: 'POST', token, body: JSON.stringify({ namespace: ns, service: 's', address: '10.9.0.1:80', name: 'w' }) });
  assert.equal((await reg('tools')).status, 403);
  assert.equal((await reg('sample')).status, 201);
  assert.equal((await fleet.agentFetch('east', '/v1/auth/tokens', { method: 'POST', token, body: JSON.stringify({ namespace: 'tools' }) })).status, 403);
});

test('the CLI: a context with the admin config works; a denial exits 6', async () => {
  const env = { ...process.env, MESHFED_CONFIG: join(fleet.hubDataDir, 'admin.meshfed.yaml') };
  const ok = spawnSync(process.execPath, [meshfedBin(), 'get', 'clusters'], { encoding: 'utf8', env });
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /east/);
  const created = spawnSync(process.execPath, [meshfedBin(), 'auth', 'token', 'create', 'bob', '--group', 'dev', '--ttl', '2h'], { encoding: 'utf8', env });
  assert.equal(created.status, 0, created.stderr);
  assert.match(created.stdout.trim(), /^mft1\.[0-9a-f]{16}\.[A-Za-z0-9_-]{43}$/);
  const list = spawnSync(process.execPath, [meshfedBin(), 'auth', 'token', 'list'], { encoding: 'utf8', env });
  assert.match(list.stdout, /bob\s+dev\s+-\s+active/);
  assert.ok(!list.stdout.includes(created.stdout.trim().split('.')[2]!));
  // bob's token in a context of its own: reads are forbidden to him (exit 6).
  const bobCfg = join(fleet.dir, 'bob.yaml');
  const cfgEnv = { ...process.env, MESHFED_CONFIG: bobCfg };
  const set = spawnSync(process.execPath, [meshfedBin(), 'config', 'set-context', 'bob', '--hub', fleet.hubUrl, '--ca', join(fleet.hubDataDir, 'ca', 'bundle.pem'), '--token', created.stdout.trim()], {
    encoding: 'utf8',
    env: cfgEnv,
  });
  assert.equal(set.status, 0, set.stderr);
  assert.equal(statSync(bobCfg).mode & 0o777, 0o600);
  const view = spawnSync(process.execPath, [meshfedBin(), 'config', 'view'], { encoding: 'utf8', env: cfgEnv });
  assert.match(view.stdout, /token: REDACTED/);
  const denied = spawnSync(process.execPath, [meshfedBin(), '--context', 'bob', 'get', 'clusters'], { encoding: 'utf8', env: cfgEnv });
  assert.equal(denied.status, 6, denied.stderr);
  assert.match(denied.stderr, /user:bob may not read Cluster/);
  const none = spawnSync(process.execPath, [meshfedBin(), 'get', 'clusters', '--hub', fleet.hubUrl], {
    encoding: 'utf8',
    env: { ...process.env, MESHFED_CONFIG: join(fleet.dir, 'none.yaml'), NODE_EXTRA_CA_CERTS: join(fleet.hubDataDir, 'ca', 'bundle.pem') },
  });
  assert.equal(none.status, 6, none.stderr);
  assert.match(none.stderr, /no valid credential/);
});

test('--insecure-api refuses a non-loopback address', async () => {
  const r = spawnSync(
    process.execPath,
    [meshfedBin(), 'hub', '--data-dir', join(fleet.dir, 'insecure'), '--listen', `0.0.0.0:${await freePort()}`, '--agent-listen', `127.0.0.1:${await freePort()}`, '--insecure-api'],
    {
      encoding: 'utf8',
      timeout: 20_000,
    },
  );
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /--insecure-api .* refused on 0\.0\.0\.0, which is not a loopback address/);
});

test('TLS: the API certificate chains to the mesh CA and names localhost and 127.0.0.1', async () => {
  const ca = fleet.hubCa()!;
  const port = Number(new URL(fleet.hubUrl).port);
  for (const host of ['localhost', '127.0.0.1']) {
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpsRequest({ host, port, path: '/healthz', ca, servername: host === 'localhost' ? host : '' }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(status, 200, host);
  }
});

/** A request presenting a client certificate (and no token). */
const withCert = (path: string, cert: string, key: string, init: { method?: string; body?: string } = {}): Promise<Response> =>
  apiFetch(new URL(path, fleet.hubUrl), init, { ca: fleet.hubCa()!, cert, key });

test('user client certificates: issued for a local key, authenticate as the user, refused when foreign or revoked', async () => {
  const td = ((await (await fleet.hubFetch('/api/v1alpha1/trust')).json()) as { trustDomain: string }).trustDomain;
  const key = await generateKeyPair();
  const csr = await createCsr(key, { uris: [userId(td, 'bob')], ca: false });
  const created = await fleet.hubFetch('/api/v1alpha1/auth/certificates', { method: 'POST', body: JSON.stringify({ user: 'bob', groups: ['dev'], ttl: '2h', csr }) });
  assert.equal(created.status, 201, await created.clone().text());
  const c = (await created.json()) as { certificate: string; serial: string; expiresAt: string };
  assert.match(c.certificate, /BEGIN CERTIFICATE/);
  assert.ok(Date.parse(c.expiresAt) > Date.now() + 3600_000);
  // The certificate alone (no token) is user bob with group dev: whoami, and a write denied naming user:bob.
  const who = await withCert('/api/v1alpha1/auth/whoami', c.certificate, key.privateKeyPem);
  assert.equal(who.status, 200);
  assert.deepEqual(await who.json(), { kind: 'user', name: 'bob', groups: ['dev'], via: 'certificate', credentialId: c.serial, trustDomain: td });
  const before = await revision();
  const write = await withCert('/api/v1alpha1/apply', c.certificate, key.privateKeyPem, { method: 'POST', body: JSON.stringify([clusterObject({ ...A, name: 'bobs' })]) });
  assert.equal(write.status, 403);
  assert.match(((await write.json()) as { error: string }).error, /user:bob may not create Cluster/);
  assert.equal(await revision(), before);
  // The issuance is audited like a token's.
  const audit = (await (await fleet.hubFetch('/api/v1alpha1/audit?kind=Certificate')).json()) as { items: { verb: string; outcome: string; object: string }[] };
  assert.ok(
    audit.items.some((r) => r.verb === 'create' && r.outcome === 'allowed' && r.object === 'bob'),
    JSON.stringify(audit.items),
  );

  // A CSR naming another user is refused (400), nothing issued.
  const other = await createCsr(key, { uris: [userId(td, 'alice')], ca: false });
  const refused = await fleet.hubFetch('/api/v1alpha1/auth/certificates', { method: 'POST', body: JSON.stringify({ user: 'bob', csr: other }) });
  assert.equal(refused.status, 400);
  assert.match(((await refused.json()) as { error: string }).error, /user\/alice is not the requester's identity/);

  // The same user ID signed by another CA: 401.
  const foreignCa = await createRootCa({ trustDomain: td, validityDays: 1 });
  const foreign = await signCsr(foreignCa, { csrPem: csr, profile: 'user', expectedId: userId(td, 'bob'), ttlSeconds: 3600 });
  assert.equal((await withCert('/api/v1alpha1/auth/whoami', foreign.chainPem, key.privateKeyPem)).status, 401);

  // Revoked: the next request answers 401.
  const revoked = await fleet.hubFetch(`/api/v1alpha1/auth/certificates/${c.serial}`, { method: 'DELETE' });
  assert.equal(revoked.status, 200);
  assert.equal((await withCert('/api/v1alpha1/auth/whoami', c.certificate, key.privateKeyPem)).status, 401);
});

test('the CLI: auth cert create writes a 0600 key and a certificate a context presents', async () => {
  const env = { ...process.env, MESHFED_CONFIG: join(fleet.hubDataDir, 'admin.meshfed.yaml') };
  const dir = join(fleet.dir, 'certs');
  const created = spawnSync(process.execPath, [meshfedBin(), 'auth', 'cert', 'create', 'carol', '--group', 'dev', '--ttl', '1h', '--out-dir', dir], { encoding: 'utf8', env });
  assert.equal(created.status, 0, created.stderr);
  assert.equal(statSync(join(dir, 'carol.key')).mode & 0o777, 0o600);
  assert.match(created.stdout, /set-context carol .*--cert .*carol\.crt --key .*carol\.key/);
  const cfgEnv = { ...process.env, MESHFED_CONFIG: join(fleet.dir, 'carol.yaml') };
  const set = spawnSync(
    process.execPath,
    [meshfedBin(), 'config', 'set-context', 'carol', '--hub', fleet.hubUrl, '--ca', join(fleet.hubDataDir, 'ca', 'bundle.pem'), '--cert', join(dir, 'carol.crt'), '--key', join(dir, 'carol.key')],
    { encoding: 'utf8', env: cfgEnv },
  );
  assert.equal(set.status, 0, set.stderr);
  const denied = spawnSync(process.execPath, [meshfedBin(), '--context', 'carol', 'get', 'clusters'], { encoding: 'utf8', env: cfgEnv });
  assert.equal(denied.status, 6, denied.stderr);
  assert.match(denied.stderr, /user:carol may not read Cluster/);
});

// Last: it locks this test's address out of failed attempts for a minute.
test('failed authentications (a credential presented and wrong) are rate-limited per address (429)', async () => {
  let status = 0;
  let attempts = 0;
  for (; attempts < 25 && status !== 429; attempts++) status = (await fleet.hubFetch('/api/v1alpha1/clusters', { token: 'wrong' })).status;
  assert.equal(status, 429);
  // The earlier tests' wrong tokens count too: the 21st failure within a minute at the latest is refused.
  assert.ok(attempts <= 21, `refused after ${attempts} attempts`);
  // While limited, failures answer 429 (even with no credential at all, which would be 401) ...
  assert.equal((await fleet.hubFetch('/api/v1alpha1/clusters', { token: 'wrong-again' })).status, 429);
  assert.equal((await fleet.hubFetch('/api/v1alpha1/clusters', { token: '' })).status, 429);
  // ... and a valid credential from the same address still gets in (a shared NAT is not locked out).
  assert.equal((await fleet.hubFetch('/api/v1alpha1/clusters')).status, 200);
});
