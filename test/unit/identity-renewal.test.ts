// meshfed identity run's renewal loop, many renewals fast: issue 13 saw
// MaxListenersExceededWarning after ~20 minutes of `identity run` (a listener
// left on the abort signal per sleep). Here the real loop (runSidecar) renews
// a 2 s certificate at 3 % of its lifetime (every ~60 ms) sixty times
// against an in-process stand-in for the agent's identity API that signs with
// a real CA (signCsr). No warning may be emitted, the abort signal keeps at
// most one listener, and the process's active handles do not grow.
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { createRootCa, signCsr, workloadId } from '../../src/ca/index.js';
import { runSidecar } from '../../src/identity/sidecar.js';

// Node warns past 10 listeners on one signal: 60 renewals leak well past that with the old sleep.
const RENEWALS = 60;
let dir: string | undefined;
after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

test(`${RENEWALS} renewals of identity run: no MaxListenersExceededWarning, no growing listeners or handles`, async () => {
  dir = await mkdtemp(join(tmpdir(), 'meshfed-renewal-'));
  const ca = await createRootCa({ trustDomain: 'renewal.test', validityDays: 1 });
  const id = workloadId('renewal.test', 'c1', 'sample', 'default');
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const reply = (v: unknown) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(v));
      if (req.url === '/v1/identity/whoami') return reply({ spiffeId: id });
      if (req.url === '/v1/identity/bundle') return reply({ caPem: ca.rootsPem, issuerFingerprint: 'root' });
      if (req.url === '/v1/identity/certificates') {
        const { csr } = JSON.parse(body) as { csr: string };
        signCsr(ca, { csrPem: csr, profile: 'workload', expectedId: id, ttlSeconds: 2 }).then(
          (i) => reply({ spiffeId: id, certChainPem: i.chainPem, caPem: ca.rootsPem, notBefore: i.notBefore.toISOString(), notAfter: i.notAfter.toISOString(), issuerFingerprint: 'root' }),
          (err: Error) => res.writeHead(400).end(JSON.stringify({ error: err.message })),
        );
        return;
      }
      res.writeHead(404).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const warnings: Error[] = [];
  const onWarning = (w: Error) => warnings.push(w);
  process.on('warning', onWarning);
  const ac = new AbortController();
  let issued = 0;
  let baseline = 0;
  let maxHandles = 0;
  let maxAbortListeners = 0;
  const errors: string[] = [];
  const done = new Promise<void>((resolve) => {
    const log = (m: string) => {
      if (m.startsWith('identity: issued')) issued++;
      else errors.push(m);
      maxAbortListeners = Math.max(maxAbortListeners, getEventListeners(ac.signal, 'abort').length);
      const handles = process.getActiveResourcesInfo().filter((r) => r !== 'FSReqCallback').length;
      if (issued === 20) baseline = handles;
      if (issued > 20) maxHandles = Math.max(maxHandles, handles);
      if (issued >= RENEWALS) resolve();
    };
    void runSidecar({ agentUrl: url, token: 't', dir: dir!, pollMs: 20, renewFraction: 0.03, log, signal: ac.signal });
  });
  try {
    await done;
  } finally {
    ac.abort();
    process.off('warning', onWarning);
    server.closeAllConnections();
    server.close();
  }
  assert.deepEqual(errors, [], 'the loop reported no error');
  assert.match(await readFile(join(dir, 'cert.pem'), 'utf8'), /BEGIN CERTIFICATE/);
  assert.deepEqual(
    warnings.map((w) => `${w.name}: ${w.message}`),
    [],
  );
  assert.ok(maxAbortListeners <= 1, `the abort signal held ${maxAbortListeners} listeners`);
  assert.ok(maxHandles <= baseline + 8, `active handles grew from ${baseline} (after 20 renewals) to ${maxHandles}`);
});
