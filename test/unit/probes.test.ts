// The probes Kubernetes uses (docs/kubernetes.md#install): /healthz (liveness)
// and /readyz (readiness) on the hub's and the agent's API, without a
// credential. /readyz answers 503 with a one-line reason until the server
// serves: the agent until it has its view (a hub without its Cluster, or none),
// the hub when its store cannot take writes. Real hub and agent in process,
// on free ports; the hub API over HTTPS as deployed (certificate not checked,
// as the kubelet does not check it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpsRequest } from 'node:https';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent } from '../../src/agent/agent.js';
import { Hub } from '../../src/hub/hub.js';

process.env.MESHFED_LOG_LEVEL ??= 'error';

interface Answer {
  status: number;
  body: Record<string, unknown>;
}

function hubGet(port: number, path: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port, path, rejectUnauthorized: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function agentGet(port: number, path: string): Promise<Answer> {
  const r = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
}

const until = async (what: string, cond: () => Promise<boolean>, ms = 20_000): Promise<void> => {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
};

test('hub: /readyz is 200 without a credential once serving, 503 naming the store once it cannot take writes; /healthz stays 200', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'meshfed-probes-hub-'));
  const hub = await Hub.start({ dataDir: dir, api: { host: '127.0.0.1', port: 0 }, agents: { host: '127.0.0.1', port: 0 } });
  try {
    const port = hub.apiAddress.port;
    assert.deepEqual(await hubGet(port, '/readyz'), { status: 200, body: { ready: true } });
    // Any other route still needs a credential.
    assert.equal((await hubGet(port, '/api/v1alpha1/clusters')).status, 401);
    await hub.store.close();
    const r = await hubGet(port, '/readyz');
    assert.equal(r.status, 503);
    assert.equal(r.body.ready, false);
    assert.match(String(r.body.reason), /store .* is closed/);
    assert.doesNotMatch(String(r.body.reason), /\n/);
    assert.equal((await hubGet(port, '/healthz')).status, 200, 'liveness does not follow readiness: restarting would not help a reader');
  } finally {
    await hub.stop();
    await rm(dir, { recursive: true, force: true });
  }
});

test("agent: /readyz is 503 with the reason until the hub's view has its Cluster, then 200; /healthz is 200 throughout", async () => {
  const dir = await mkdtemp(join(tmpdir(), 'meshfed-probes-agent-'));
  // Insecure channel: readiness, not trust, is under test here (trust.test.ts covers joining).
  const hub = await Hub.start({ dataDir: join(dir, 'hub'), api: { host: '127.0.0.1', port: 0 }, agents: { host: '127.0.0.1', port: 0 }, insecureChannel: true });
  const agent = await Agent.start({
    cluster: 'c1',
    hub: `127.0.0.1:${hub.agentAddress.port}`,
    xds: { host: '127.0.0.1', port: 0 },
    api: { host: '127.0.0.1', port: 0 },
    dataDir: join(dir, 'agent'),
    insecureChannel: true,
  });
  try {
    const port = agent.apiAddress.port;
    // The hub refuses an agent whose Cluster it does not have: the reason says so.
    await until('the refusal', async () => /UnknownCluster/.test(String((await agentGet(port, '/readyz')).body.reason)));
    const before = await agentGet(port, '/readyz');
    assert.equal(before.status, 503);
    assert.equal(before.body.ready, false);
    assert.match(String(before.body.reason), /^waiting for the first view from the hub \(hub: .*cluster "c1" is not registered/);
    assert.equal((await agentGet(port, '/healthz')).status, 200);
    await hub.store.commit([{ type: 'put', object: { apiVersion: 'meshfed.io/v1alpha1', kind: 'Cluster', metadata: { name: 'c1' }, spec: { network: 'n', region: 'r', zones: ['z'] } } }]);
    await until('ready', async () => (await agentGet(port, '/readyz')).status === 200);
    assert.deepEqual((await agentGet(port, '/readyz')).body, { ready: true });
    assert.equal((await agentGet(port, '/v1/status')).status, 401, 'the status route still needs a credential');
  } finally {
    await agent.stop();
    await hub.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
