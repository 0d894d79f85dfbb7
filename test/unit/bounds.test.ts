// Bounded inputs (issue 11): parse bounds (depth, documents, objects, YAML
// aliases), Kubernetes label and annotation rules, the Mesh singleton, the
// shared HTTP body reader (413 as soon as the limit passes, JSON objects
// only), path decoding and the per-key rate limiter.
import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { API_VERSION, MAX_DOCUMENTS, MAX_OBJECTS, qualifiedNameProblem, theMesh } from '../../src/api/index.js';
import { parseAndValidate } from '../../src/registry.js';
import { MeshfedError } from '../../src/util/errors.js';
import { decodePathSegments, MAX_BODY_BYTES, parseJsonObject, readBody, sendJson } from '../../src/util/http-body.js';
import { RateLimiter } from '../../src/util/rate-limit.js';

function refused(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof MeshfedError, `a MeshfedError, got ${String(err)}`);
    assert.equal(err.httpStatus, 400);
    assert.match(err.message, pattern);
    return true;
  });
}

const mesh = (metadata: Record<string, unknown>) => JSON.stringify({ apiVersion: API_VERSION, kind: 'Mesh', metadata: { name: 'default', ...metadata }, spec: {} });

test('deep nesting is refused fast, JSON or YAML, naming the bound', () => {
  const n = 1_000_000;
  const started = performance.now();
  refused(() => parseAndValidate('['.repeat(n) + ']'.repeat(n), 'req'), /nested deeper than 64 levels/);
  refused(() => parseAndValidate('a: ' + '{"a": '.repeat(100_000), 'req'), /nested deeper than 64 levels/);
  // Block YAML nests by indentation: checked on the parsed value.
  const block = Array.from({ length: 70 }, (_, i) => ' '.repeat(i) + 'a:').join('\n') + ' 1\n';
  refused(() => parseAndValidate(block, 'req'), /nested deeper than 64 levels/);
  assert.ok(performance.now() - started < 1000, 'refused in well under a second');
});

test('YAML: too many documents, an undefined alias and an alias bomb are 400s', () => {
  refused(() => parseAndValidate('a: 1\n---\n'.repeat(MAX_DOCUMENTS + 5), 'req'), new RegExp(`more than ${MAX_DOCUMENTS} YAML documents`));
  refused(() => parseAndValidate('metadata: *nope\n', 'req'), /Unresolved alias/);
  const bomb = ['a: &a [x,x,x,x,x,x,x,x,x]', 'b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]', 'c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]', 'd: [*c,*c,*c,*c,*c,*c,*c,*c,*c]'].join('\n');
  refused(() => parseAndValidate(bomb, 'req'), /too many alias expansions/);
});

test('more objects than one request may hold is a 400', () => {
  const pol = (i: number) => ({ apiVersion: API_VERSION, kind: 'Mesh', metadata: { name: `m${i}` }, spec: {} });
  refused(() => parseAndValidate(JSON.stringify(Array.from({ length: MAX_OBJECTS + 1 }, (_, i) => pol(i))), 'req'), new RegExp(`more than ${MAX_OBJECTS} objects`));
});

test('labels and annotations obey Kubernetes rules, naming the key', () => {
  assert.equal(parseAndValidate(mesh({ labels: { 'app.kubernetes.io/name': 'x', version: 'v1.2_3', empty: '' } })).length, 1);
  refused(() => parseAndValidate(mesh({ labels: { 'Bad_/x': 'v' } })), /label key "Bad_\/x": the prefix "Bad_" is not a DNS subdomain/);
  refused(() => parseAndValidate(mesh({ labels: { ok: '-bad-' } })), /label "ok": the value must be letters/);
  refused(() => parseAndValidate(mesh({ labels: { ['k'.repeat(64)]: 'v' } })), /the name is 64 characters, at most 63/);
  refused(() => parseAndValidate(mesh({ annotations: { note: 'x'.repeat(300_000) } })), /annotations are 300004 bytes in all, at most 262144/);
  refused(() => parseAndValidate(mesh({ annotations: { 'bad key': 'v' } })), /annotation key "bad key"/);
  assert.equal(qualifiedNameProblem('meshfed.io/owner'), undefined);
  assert.match(qualifiedNameProblem('/x') ?? '', /prefix before "\/" is empty/);
});

test('Mesh is a singleton: a Mesh not named default is refused, and readers take the default one', () => {
  refused(() => parseAndValidate(mesh({ name: 'aaa' })), /Mesh is a singleton: its name must be "default", not "aaa"/);
  const objects = [
    { kind: 'Mesh', metadata: { name: 'aaa' } },
    { kind: 'Mesh', metadata: { name: 'default' } },
  ];
  assert.equal(theMesh(objects)?.metadata.name, 'default');
});

test('JSON bodies: null, arrays and scalars are 400s naming what they are', () => {
  assert.deepEqual(parseJsonObject(''), {});
  refused(() => parseJsonObject('null'), /must be a JSON object, not null/);
  refused(() => parseJsonObject('[1]'), /must be a JSON object, not an array/);
  refused(() => parseJsonObject('1e20'), /must be a JSON object, not a number/);
  refused(() => parseJsonObject('{'), /is not JSON/);
  refused(() => parseJsonObject('{"a":' + '['.repeat(100) + ']'.repeat(100) + '}'), /nested deeper than 64/);
});

test('a bad %-escape in a path is a 400', () => {
  assert.deepEqual(decodePathSegments('/api/v1alpha1/clusters/a%20b'), ['api', 'v1alpha1', 'clusters', 'a b']);
  refused(() => decodePathSegments('/api/%E0%A4%A'), /malformed %-escape/);
});

async function withServer(fn: (port: number) => Promise<void>): Promise<void> {
  const server: Server = createServer((req, res) => {
    readBody(req, 1024).then(
      (body) => sendJson(res, 200, { bytes: body.length }),
      (err: unknown) => sendJson(res, err instanceof MeshfedError ? err.httpStatus : 500, { error: String(err) }),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    await fn((server.address() as AddressInfo).port);
  } finally {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  }
}

test('a body over the limit answers 413 as soon as the limit passes, without reading the rest', async () => {
  assert.equal(MAX_BODY_BYTES, 3 * 1024 * 1024);
  await withServer(async (port) => {
    const ok = await fetch(`http://127.0.0.1:${port}/`, { method: 'POST', body: 'x'.repeat(1000) });
    assert.equal(ok.status, 200);
    const declared = await fetch(`http://127.0.0.1:${port}/`, { method: 'POST', body: 'x'.repeat(5000) });
    assert.equal(declared.status, 413);
    // Streamed (no Content-Length): the answer comes while the client is still sending.
    const status = await new Promise<number>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, method: 'POST', headers: { 'transfer-encoding': 'chunked' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.write('x'.repeat(2048)); // never ended: only an early answer resolves
    });
    assert.equal(status, 413);
  });
});

test('the rate limiter allows a burst per key, refills over time and bounds its keys', () => {
  let now = 0;
  const rl = new RateLimiter({ perSecond: 1, burst: 3, maxKeys: 100, now: () => now });
  for (let i = 0; i < 3; i++) assert.equal(rl.take('a').allowed, true);
  const refusedNow = rl.take('a');
  assert.equal(refusedNow.allowed, false);
  assert.equal(refusedNow.retryAfterSeconds, 1);
  assert.equal(rl.take('b').allowed, true, 'another key has its own bucket');
  now += 1000;
  assert.equal(rl.take('a').allowed, true);
  assert.equal(rl.take('a').allowed, false);
  for (let i = 0; i < 1000; i++) rl.take(`k${i}`);
  assert.ok(rl.size <= 100, `at most 100 keys held, got ${rl.size}`);
});
