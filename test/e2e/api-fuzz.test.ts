// A bounded, seeded fuzz test of the hub's and the agent's HTTP APIs (issue 11):
// thousands of malformed requests (random methods, paths, %-escapes, query
// strings, content types; bodies truncated, too large, too deep, YAML alias
// bombs, null, 1e20, and a wrong type in each field of every kind of the
// registry) against a real hub and a real agent. It asserts no answer is a
// 5xx, both processes stay up (/healthz answers) and nothing is stored (the
// hub's store revision, the agent's registrations and tokens unchanged).
// Every request body the generator makes is invalid by construction, so any
// write would be a bug. MESHFED_FUZZ_SEED=N replays a run (the seed is printed).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { TSchema } from '@sinclair/typebox';
import { API_VERSION } from '../../src/api/index.js';
import { LocalFleet, type ClusterSpec } from '../../src/demo/fleet.js';
import { KINDS } from '../../src/registry.js';
import { prng } from '../../src/util/prng.js';

const SEED = Number(process.env.MESHFED_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
const HUB_CASES = 3000;
const AGENT_CASES = 1500;
const CONCURRENCY = 8;
const C1: ClusterSpec = { name: 'fuzz1', network: 'n1', region: 'r1', zones: ['z1'] };

let fleet: LocalFleet;
let agentUrl = '';
const keepAlive = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
let tlsKeepAlive: HttpsAgent | undefined;
/** The credential per API base URL: the fuzz requests are authenticated (admin), so they reach the parsers and handlers. */
const credentials = new Map<string, string>();

interface Answer {
  status: number;
  body: string;
}

/**
 * Every request of this test goes through here: the one place that sets
 * headers (a credential is added here once the APIs are authenticated).
 */
function send(base: string, method: string, path: string, body?: string | Buffer, headers: Record<string, string> = {}): Promise<Answer> {
  const url = new URL(base);
  const token = credentials.get(base);
  const auth: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
  const tls = url.protocol === 'https:';
  const make = tls ? httpsRequest : request;
  return new Promise((resolve, reject) => {
    const opts = { host: url.hostname, port: url.port, method, path, agent: tls ? tlsKeepAlive : keepAlive, headers: { ...auth, ...headers }, timeout: 15_000 };
    const req = make(opts, (res) => {
      const chunks: Buffer[] = [];
      if (String(res.headers['content-type']).includes('ndjson')) {
        // A watch that was accepted streams forever: its status is the answer.
        res.destroy();
        resolve({ status: res.statusCode ?? 0, body: '' });
        return;
      }
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8').slice(0, 100_000) }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer in 15 s`)));
    req.on('error', reject);
    req.end(body);
  });
}

// ---------------------------------------------------------------- generator

const rand = prng(SEED);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
const chance = (p: number): boolean => rand() < p;

const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'FOO'] as const;
const ESCAPES = ['%', '%E0%A4%A', '%ZZ', '%00', '%2F', '%25', '%C0%AF', '%FF', 'a%20b', '..', '%2e%2e'];
const NAMES = ['fuzz-x', 'nope', 'a'.repeat(300), 'UPPER', '-bad-', '', ...ESCAPES];
const QUERIES = [
  'watch=1&revision=-1',
  'watch=1&revision=abc',
  'watch=1&revision=1e20',
  'watch=1&revision=99999999999999999999',
  'watch=1&revision=1.5',
  'watch=1&revision=',
  'namespace=%ZZ',
  'namespace=' + 'n'.repeat(5000),
  'cluster=&namespace=',
  'source=%E0%A4%A',
  'revision=0x10',
  'a=1&a=2&a=3',
  '%',
];
const CONTENT_TYPES = ['application/json', 'text/plain', 'application/yaml', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', '', 'application/json; charset=utf-16'];
const WRONG_VALUES: unknown[] = [null, 1e20, -1, 0, 1.5, true, '', 'x'.repeat(400), [], [null], {}, { a: { b: { c: [] } } }, '1e20', 'NaN'];

/** A value whose JSON type the schema does not accept (so the object is invalid by construction). */
function wrongFor(schema: TSchema): unknown {
  const type = (schema as { type?: string }).type;
  const candidates = WRONG_VALUES.filter((v) => {
    if (type === 'string') return typeof v !== 'string';
    if (type === 'number' || type === 'integer') return typeof v !== 'number';
    if (type === 'boolean') return typeof v !== 'boolean';
    if (type === 'array') return !Array.isArray(v);
    if (type === 'object') return v === null || typeof v !== 'object' || Array.isArray(v);
    // Unions (of literals, mostly): a value no member is.
    return v === null || Array.isArray(v);
  });
  return pick(candidates.length > 0 ? candidates : [null]);
}

/** An object of `kind` with one field (a random path through its schema) of the wrong type. */
function wrongTypeObject(): unknown {
  const def = pick(KINDS);
  const obj: Record<string, unknown> = { apiVersion: API_VERSION, kind: def.kind, metadata: { name: 'fuzz-obj', namespace: 'default' }, spec: {} };
  let schema: TSchema = def.schema;
  let holder: Record<string, unknown> = obj;
  for (let depth = 0; depth < 6; depth++) {
    const props = (schema as { properties?: Record<string, TSchema> }).properties;
    if (!props || Object.keys(props).length === 0) break;
    const key = pick(Object.keys(props));
    const next = props[key]!;
    const nextProps = (next as { properties?: Record<string, TSchema> }).properties;
    if (nextProps && Object.keys(nextProps).length > 0 && chance(0.6)) {
      const child = typeof holder[key] === 'object' && holder[key] !== null ? (holder[key] as Record<string, unknown>) : {};
      holder[key] = child;
      holder = child;
      schema = next;
      continue;
    }
    holder[key] = wrongFor(next);
    return obj;
  }
  // No leaf reached: the kind itself is wrong.
  obj.kind = 12345;
  return obj;
}

function deep(n: number): string {
  return pick(['[', '{"a":']).repeat(n) + (chance(0.5) ? '1' : '');
}

const ALIAS_BOMB = [
  'a: &a [x,x,x,x,x,x,x,x,x]',
  'b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]',
  'c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]',
  'd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]',
  'e: [*d,*d,*d,*d,*d,*d,*d,*d,*d]',
].join('\n');

/** An invalid request body: never an input any endpoint would accept as a write. */
function badBody(): string | Buffer {
  const valid = JSON.stringify({ apiVersion: API_VERSION, kind: 'Cluster', metadata: { name: 'fuzz-ok' }, spec: { region: 'r', zones: ['z'] } });
  switch (Math.floor(rand() * 16)) {
    case 0:
      return 'null';
    case 1:
      return pick(['1e20', '-1', '"str"', 'true', '[]', '[null]', '[1e20]']);
    case 2:
      return valid.slice(0, Math.floor(rand() * (valid.length - 1))); // truncated
    case 3:
      return chance(0.2) ? 'x'.repeat(3 * 1024 * 1024 + 10) : deep(1000 + Math.floor(rand() * 50_000));
    case 4:
      return ALIAS_BOMB;
    case 5:
      return 'metadata: *undefined_anchor\n';
    case 6:
      return 'a: 1\n---\n'.repeat(1001 + Math.floor(rand() * 2000));
    case 7:
      return Buffer.from(Array.from({ length: 1 + Math.floor(rand() * 2000) }, () => Math.floor(rand() * 256)));
    case 8:
      return JSON.stringify({ from: null, to: 1e20, with: pick([null, 1e20, 'x', [null], [{}]]) });
    case 9:
      return JSON.stringify({ ttl: pick(['1e20', '99999999999999999999d', 1e20, null, '-1h', '0s']), spec: pick([null, 'x', { zones: 'z1', region: 'r' }, { zones: [1], region: 'r' }, []]) });
    case 10:
      return JSON.stringify({ step: pick([null, 1e20, 'drop', [], {}]), force: 'yes' });
    case 11:
      return JSON.stringify({ namespace: pick([null, 1e20, [], 'Bad NS']), serviceAccount: 'sa', ttlSeconds: pick([1e20, -1, 'x', null]) });
    case 12:
      return JSON.stringify({ namespace: 'default', service: pick([null, 1, []]), address: pick(['x', 1e20, null, '1.2.3.4:99999999']), labels: pick([null, 'x', []]), protocol: 'QUIC' });
    case 13:
      return JSON.stringify({ csr: pick([null, 1e20, 'not a pem', [], {}]) });
    default:
      return JSON.stringify(chance(0.5) ? wrongTypeObject() : [wrongTypeObject(), wrongTypeObject()]);
  }
}

function query(): string {
  return chance(0.5) ? '?' + pick(QUERIES) : '';
}

const HUB_PATHS = [
  () => '/api/v1alpha1/apply',
  () => '/api/v1alpha1/plan',
  () => '/api/v1alpha1/explain',
  () => `/api/v1alpha1/clusters/${pick(NAMES)}/join-token`,
  () => '/api/v1alpha1/trust/rotate-root',
  () => '/api/v1alpha1/trust',
  () => `/api/v1alpha1/${pick([...KINDS.map((k) => k.plural), 'globalservices', 'agents', 'hub', 'proxies', 'nope', ...ESCAPES])}`,
  () => `/api/v1alpha1/${pick(KINDS).plural}/${pick(NAMES)}`,
  () => `/${pick(ESCAPES)}/${pick(ESCAPES)}`,
  () => `/api/${pick(ESCAPES)}`,
  () => '/healthz',
];

const AGENT_PATHS = [
  () => '/v1/workloads',
  () => '/v1/identity/tokens',
  () => '/v1/identity/certificates',
  () => '/v1/identity/whoami',
  () => '/v1/identity/bundle',
  () => '/v1/bootstrap',
  () => '/v1/status',
  () => '/v1/services',
  () => '/v1/proxies',
  () => `/v1/${pick(ESCAPES)}`,
  () => `/${pick(ESCAPES)}`,
];

interface Case {
  method: string;
  path: string;
  body?: string | Buffer;
  headers: Record<string, string>;
}

function makeCase(paths: readonly (() => string)[]): Case {
  const path = pick(paths)() + query();
  const method: string = pick(METHODS);
  const headers: Record<string, string> = {};
  const ct = pick(CONTENT_TYPES);
  if (ct) headers['content-type'] = ct;
  if (chance(0.2)) headers.authorization = pick(['Bearer nope', 'Bearer ', 'Basic eA==', 'Bearer ' + 'x'.repeat(5000)]);
  const c: Case = { method, path, headers };
  // An empty body is a rotation's default step (add): rotate-root only ever gets an invalid step.
  if (method !== 'GET' && method !== 'HEAD') c.body = path.includes('rotate-root') ? JSON.stringify({ step: pick([null, 1e20, 'drop', [], {}]) }) : badBody();
  else if (chance(0.05)) c.body = ''; // GET with an empty body
  return c;
}

async function run(base: string, cases: Case[], failures: string[]): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < cases.length) {
      const c = cases[next++]!;
      const what = `${c.method} ${c.path.slice(0, 120)} body ${c.body === undefined ? '-' : String(c.body.slice(0, 80))}`;
      try {
        const a = await send(base, c.method, c.path, c.body, c.headers);
        if (a.status >= 500 || a.status === 0) failures.push(`${a.status} for ${what}: ${a.body.slice(0, 300)}`);
      } catch (err) {
        // A connection closed after an early 413 (the body was not read) is expected; anything else is not.
        const msg = err instanceof Error ? err.message : String(err);
        if (!/EPIPE|ECONNRESET|socket hang up/.test(msg)) failures.push(`no answer for ${what}: ${msg}`);
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
}

async function healthy(base: string): Promise<void> {
  const r = await send(base, 'GET', '/healthz');
  assert.equal(r.status, 200, `${base}/healthz answers`);
}

async function hubRevision(): Promise<number> {
  return (JSON.parse((await send(fleet.hubUrl, 'GET', '/healthz')).body) as { revision: number }).revision;
}

async function agentState(): Promise<string> {
  const w = await send(agentUrl, 'GET', '/v1/workloads');
  const t = await send(agentUrl, 'GET', '/v1/identity/tokens');
  return `${w.body} ${t.body}`;
}

before(async () => {
  console.log(`api-fuzz seed ${SEED} (MESHFED_FUZZ_SEED=${SEED} replays it)`);
  fleet = await LocalFleet.create();
  await fleet.startHub();
  await fleet.apply([{ apiVersion: API_VERSION, kind: 'Mesh', metadata: { name: 'default' }, spec: { trustDomain: 'fuzz.local' } }]);
  await fleet.addCluster(C1);
  agentUrl = (await fleet.startAgent(C1)).apiUrl;
  // The hub's trust state is in its store: once the agent has its intermediate for this trust domain, nothing
  // but requests writes (the tests compare the store's revision before and after).
  await fleet.waitAgent(C1.name, (st) => st.hub.connected && (st.trust.intermediate?.spiffeId.startsWith('spiffe://fuzz.local/') ?? false));
  const ca = fleet.hubCa();
  tlsKeepAlive = new HttpsAgent({ keepAlive: true, maxSockets: CONCURRENCY, ...(ca ? { ca } : {}) });
  credentials.set(fleet.hubUrl, fleet.adminToken);
  credentials.set(agentUrl, fleet.agentToken(C1.name));
});

after(async () => {
  keepAlive.destroy();
  tlsKeepAlive?.destroy();
  await fleet?.close();
});

/**
 * The hub's revision once the agent's connection wrote what it writes (the Cluster's status, the trust records of
 * its certificates): unchanged for 1.5 s. On a loaded machine those writes come late; a fixed sleep missed them.
 */
async function settledRevision(): Promise<number> {
  let last = await hubRevision();
  let since = Date.now();
  const deadline = Date.now() + 20_000;
  while (Date.now() - since < 1500) {
    if (Date.now() > deadline) throw new Error(`the hub's revision kept moving for 20 s (now ${last})`);
    await new Promise((r) => setTimeout(r, 250));
    const now = await hubRevision();
    if (now !== last) [last, since] = [now, Date.now()];
  }
  return last;
}

test(`hub: ${HUB_CASES} malformed requests answer 4xx, the hub stays up and stores nothing`, async () => {
  const revision = await settledRevision();
  const failures: string[] = [];
  const cases = Array.from({ length: HUB_CASES }, () => makeCase(HUB_PATHS));
  for (let i = 0; i < cases.length; i += 500) {
    await run(fleet.hubUrl, cases.slice(i, i + 500), failures);
    await healthy(fleet.hubUrl);
  }
  assert.deepEqual(failures.slice(0, 20), [], `seed ${SEED}: ${failures.length} requests answered 5xx or not at all`);
  assert.equal(await hubRevision(), revision, `seed ${SEED}: a rejected request changed the store`);
});

test(`agent: ${AGENT_CASES} malformed requests answer 4xx, the agent stays up and registers nothing`, async () => {
  const state = await agentState();
  const failures: string[] = [];
  const cases = Array.from({ length: AGENT_CASES }, () => makeCase(AGENT_PATHS));
  for (let i = 0; i < cases.length; i += 500) {
    await run(agentUrl, cases.slice(i, i + 500), failures);
    await healthy(agentUrl);
  }
  assert.deepEqual(failures.slice(0, 20), [], `seed ${SEED}: ${failures.length} requests answered 5xx or not at all`);
  assert.equal(await agentState(), state, `seed ${SEED}: a rejected request registered a workload or made a token`);
});

// ---------------------------------------------------------------- the 500s of issue 11, one by one

test('each input that answered 500 in issue 11 answers 400 naming the problem', async () => {
  const revision = await hubRevision();
  const hub = fleet.hubUrl;
  const cases: [string, string, string, string | undefined, RegExp][] = [
    [hub, 'GET', '/api/v1alpha1/clusters?watch=1&revision=-1', undefined, /revision: "-1" is not a non-negative integer/],
    [hub, 'GET', '/api/v1alpha1/clusters?watch=1&revision=abc', undefined, /revision: "abc" is not a non-negative integer/],
    [hub, 'GET', '/api/v1alpha1/clusters/%E0%A4%A', undefined, /malformed %-escape/],
    [hub, 'POST', `/api/v1alpha1/clusters/${C1.name}/join-token`, JSON.stringify({ spec: { region: 'r1', zones: 'z1' } }), /zones/],
    [hub, 'POST', '/api/v1alpha1/clusters/fuzz-new/join-token', JSON.stringify({ spec: 'x' }), /spec: must be an object/],
    [hub, 'POST', `/api/v1alpha1/clusters/${C1.name}/join-token`, JSON.stringify({ ttl: '99999999999999999999d' }), /longer than the 30d maximum/],
    [hub, 'POST', '/api/v1alpha1/explain', 'null', /must be a JSON object, not null/],
    [hub, 'POST', '/api/v1alpha1/apply', 'metadata: *nope\n', /Unresolved alias/],
    [hub, 'POST', '/api/v1alpha1/apply', ALIAS_BOMB, /too many alias expansions/],
    [hub, 'POST', '/api/v1alpha1/apply', '['.repeat(1_000_000) + ']'.repeat(1_000_000), /nested deeper than 64 levels/],
    [hub, 'POST', '/api/v1alpha1/apply', JSON.stringify({ apiVersion: API_VERSION, kind: 'Mesh', metadata: { name: 'aaa' }, spec: { trustDomain: 'evil.local' } }), /Mesh is a singleton/],
    [hub, 'POST', '/api/v1alpha1/apply', JSON.stringify({ apiVersion: API_VERSION, kind: 'Mesh', metadata: { name: 'default', annotations: { a: 'x'.repeat(300_000) } }, spec: {} }), /at most 262144/],
    [agentUrl, 'POST', '/v1/workloads', 'null', /must be a JSON object, not null/],
    [agentUrl, 'POST', '/v1/identity/certificates', 'null', /must be a JSON object, not null/],
    [agentUrl, 'POST', '/v1/identity/tokens', JSON.stringify({ namespace: 'default', serviceAccount: 'sa', ttlSeconds: 1e20 }), /ttlSeconds: a positive number of seconds, at most/],
  ];
  for (const [base, method, path, body, pattern] of cases) {
    const a = await send(base, method, path, body, { 'content-type': 'application/json' });
    const what = `${method} ${path.slice(0, 60)} ${String(body).slice(0, 60)}`;
    // The CSR endpoint checks the token first: 401 without one, 400 for the body with one.
    if (path === '/v1/identity/certificates') assert.ok(a.status === 400 || a.status === 401, `${what}: ${a.status} ${a.body}`);
    else {
      assert.equal(a.status, 400, `${what}: ${a.body}`);
      assert.match((JSON.parse(a.body) as { error: string }).error, pattern, what);
    }
  }
  const big = await send(hub, 'POST', '/api/v1alpha1/apply', 'x'.repeat(3 * 1024 * 1024 + 1), { 'content-type': 'application/json' }).catch(() => ({ status: 413, body: 'closed early' }));
  assert.equal(big.status, 413);
  assert.equal(await hubRevision(), revision, 'nothing was stored');
});

test('a watcher that does not read is dropped and freed, and the hub says why', async () => {
  const url = new URL(fleet.hubUrl);
  const ca = fleet.hubCa();
  const socket = url.protocol === 'https:' ? tlsConnect({ port: Number(url.port), host: url.hostname, servername: url.hostname, ...(ca ? { ca } : {}) }) : connect(Number(url.port), url.hostname);
  socket.on('error', () => undefined); // the hub may reset a connection it drops
  await new Promise<void>((r) => socket.once(url.protocol === 'https:' ? 'secureConnect' : 'connect', () => r()));
  socket.write(`GET /api/v1alpha1/meshes?watch=1 HTTP/1.1\r\nHost: ${url.host}\r\nAuthorization: Bearer ${fleet.adminToken}\r\n\r\n`);
  socket.pause();
  const closed = new Promise<void>((r) => socket.once('close', () => r()));
  // Each apply is a ~200 KB Mesh event: 12 MB in all, where the hub keeps at most 256 KiB unsent.
  for (let i = 0; i < 60; i++) {
    await fleet.apply([{ apiVersion: API_VERSION, kind: 'Mesh', metadata: { name: 'default', annotations: { note: `${i}`.padEnd(200_000, 'x') } }, spec: { trustDomain: 'fuzz.local' } }]);
  }
  let received = 0;
  socket.on('data', (c: Buffer) => (received += c.length));
  socket.resume();
  await closed;
  assert.ok(received < 6_000_000, `the stream was cut: ${received} of ~12,000,000 bytes arrived`);
  const log = readFileSync(join(fleet.logDir, 'hub.log'), 'utf8');
  assert.match(log, /slow watcher dropped/);
  await healthy(fleet.hubUrl);
});
