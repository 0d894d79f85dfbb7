// What a list or watch selects at the hub (src/hub/api-select.ts), and how
// `get -w` follows a watch the hub ends (src/cli/get.ts): against a stand-in
// hub that ends the first watch with an ERROR line, the CLI lists and watches again.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import type { ApiObject } from '../../src/api/index.js';
import { meshfedBin } from '../../src/demo/processes.js';
import { selectionOf, watchFilter } from '../../src/hub/api-select.js';
import type { WatchEvent } from '../../src/store/store.js';
import { findKind } from '../../src/registry.js';
import { eventually } from '../helpers/eventually.js';

function tp(name: string, namespace: string, labels: Record<string, string>): ApiObject {
  return { apiVersion: 'meshfed.io/v1alpha1', kind: 'TrafficPolicy', metadata: { name, namespace, labels }, spec: { destinations: [{ name: 'rebel-base' }] } } as ApiObject;
}

test('a watch with a selector: leaving the selection is DELETED, entering it ADDED, others unseen', () => {
  const sel = selectionOf(findKind('tp')!, new URLSearchParams({ namespace: 'a', labelSelector: 'team=red' }));
  const seen = watchFilter(sel, [tp('p1', 'a', { team: 'red' })]);
  const ev = (type: WatchEvent['type'], o: ApiObject) => seen({ type, object: o, revision: 1 })?.type;
  assert.equal(ev('MODIFIED', tp('p1', 'a', { team: 'red', x: 'y' })), 'MODIFIED');
  assert.equal(ev('MODIFIED', tp('p1', 'a', { team: 'blue' })), 'DELETED');
  assert.equal(ev('MODIFIED', tp('p1', 'a', { team: 'blue' })), undefined);
  assert.equal(ev('MODIFIED', tp('p1', 'a', { team: 'red' })), 'ADDED');
  assert.equal(ev('DELETED', tp('p1', 'a', { team: 'red' })), 'DELETED');
  assert.equal(ev('ADDED', tp('p2', 'b', { team: 'red' })), undefined, 'another namespace');
  assert.equal(ev('ADDED', tp('p3', 'a', {})), undefined);
  assert.equal(ev('DELETED', tp('p3', 'a', {})), undefined);
  assert.equal(seen({ type: 'ADDED', object: { ...tp('c', 'a', { team: 'red' }), kind: 'Cluster' }, revision: 1 }), undefined, 'another kind');
});

test('get -w lists and watches again after the hub ends a watch with an ERROR line', async () => {
  const calls: string[] = [];
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    calls.push(url.searchParams.get('watch') ? `watch@${url.searchParams.get('revision')}` : 'list');
    res.setHeader('content-type', 'application/json');
    if (!url.searchParams.get('watch')) return res.end(JSON.stringify({ items: [], revision: calls.length }));
    res.write(JSON.stringify({ type: 'BOOKMARK', revision: 1 }) + '\n');
    if (calls.filter((c) => c.startsWith('watch')).length === 1) {
      return res.end(JSON.stringify({ type: 'ERROR', reason: 'SlowWatcher', message: 'the client read too slowly' }) + '\n');
    }
    // The second watch: one change, then it stays open.
    res.write(JSON.stringify({ type: 'ADDED', object: tp('late', 'ns1', {}), revision: 5 }) + '\n');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const p = spawn(process.execPath, [meshfedBin(), 'get', 'tp', '-w', '-A', '--hub', `http://127.0.0.1:${port}`], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, MESHFED_CONFIG: '/nonexistent' },
  });
  let out = '';
  let err = '';
  p.stdout.on('data', (d: Buffer) => (out += d.toString()));
  p.stderr.on('data', (d: Buffer) => (err += d.toString()));
  try {
    await eventually('the row of the second watch', async () => (/^NAME\s+NAMESPACE[^\n]*\nlate\s+ns1\s/.test(out) ? true : undefined));
    assert.match(err, /^watch ended: the client read too slowly; listing again\n$/);
    assert.deepEqual(calls, ['list', 'watch@1', 'list', 'watch@3']);
  } finally {
    // The CLI may already have exited (a crash): do not wait for an exit that came before.
    const code = p.exitCode !== null ? Promise.resolve(p.exitCode) : new Promise((r) => p.on('exit', r));
    p.kill('SIGINT');
    assert.equal(await code, 0, err);
    server.closeAllConnections();
    server.close();
  }
});
