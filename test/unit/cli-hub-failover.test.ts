// The CLI with several hub URLs (src/cli/http.ts): a call moves on to the next
// URL when one gives no answer or answers 503, never on another answer (a 4xx
// is the answer); with none answering, the error names every URL tried.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { request, streamLines } from '../../src/cli/http.js';
import { MeshfedError } from '../../src/util/errors.js';
import { freePort } from '../../src/demo/processes.js';

const servers: Server[] = [];
const hits = new Map<string, number>();
let refused = '';

async function serve(name: string, status: number, body: string): Promise<string> {
  const s = createServer((_req, res) => {
    hits.set(name, (hits.get(name) ?? 0) + 1);
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(body);
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  servers.push(s);
  return `http://127.0.0.1:${(s.address() as { port: number }).port}`;
}

let ok = '';
let stream = '';
let notReady = '';
let notFound = '';

before(async () => {
  process.env.MESHFED_CONFIG = join(tmpdir(), `meshfed-none-${process.pid}.yaml`);
  refused = `http://127.0.0.1:${await freePort()}`;
  ok = await serve('ok', 200, '{"answer":"ok"}');
  stream = await serve('stream', 200, '{"answer":"ok"}\n{"answer":"more"}\n');
  notReady = await serve('notReady', 503, '{"error":"not ready"}');
  notFound = await serve('notFound', 404, '{"error":"no such object"}');
});

after(() => {
  for (const s of servers) s.close();
});

test('moves on past a refused connection and a 503', async () => {
  assert.deepEqual(await request(`${refused},${notReady},${ok}`, 'hub', 'GET', 'api/v1alpha1/clusters'), { answer: 'ok' });
});

test('a 4xx is the answer: the next URL is not tried', async () => {
  hits.clear();
  const err = await request(`${notFound},${ok}`, 'hub', 'GET', 'api/v1alpha1/clusters/x').catch((e: unknown) => e);
  assert.ok(err instanceof MeshfedError);
  assert.equal(err.code, 'not-found');
  assert.equal(hits.get('ok'), undefined);
});

test('none answers: unavailable, naming every URL', async () => {
  const other = `http://127.0.0.1:${await freePort()}`;
  const err = await request(`${refused},${other}`, 'hub', 'GET', 'healthz').catch((e: unknown) => e);
  assert.ok(err instanceof MeshfedError);
  assert.equal(err.code, 'unavailable');
  assert.match(err.message, new RegExp(`${refused}.*ECONNREFUSED.*${other}.*ECONNREFUSED`));
});

test('a watch moves on past a refused connection', async () => {
  const lines: unknown[] = [];
  await streamLines(`${refused},${stream}`, 'hub', 'api/v1alpha1/clusters?watch=1', (l) => lines.push(l));
  assert.deepEqual(lines, [{ answer: 'ok' }, { answer: 'more' }]);
});
