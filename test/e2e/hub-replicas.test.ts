// Two hub replicas on one etcd (HA): one leads, the other stands by; an agent
// given both addresses finds the leader; `meshfed get hubs` shows the roles.
// The leader is killed (SIGKILL, no clean hand-over): the standby leads within
// about the lease (2 s), the agent reconnects to it, and the CLI given both hub
// URLs writes through the survivor. Insecure channel and API (mTLS through a
// failover is in ha-faults.test.ts); both replicas share the store's trust and
// credentials, with one state key. A standby answers the agent channel
// UNAVAILABLE, naming the leader.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify as stringifyYaml } from 'yaml';
import { apiFetch } from '../../src/cli/http.js';
import { DEMO_CLUSTERS, LocalFleet, clusterObject } from '../../src/demo/fleet.js';
import { freePort, meshfedBin, waitHttp, type Child } from '../../src/demo/processes.js';
import { RawSession } from '../helpers/channel-client.js';
import { runMeshfed } from '../helpers/cli.js';
import { startEtcd, type EtcdCluster } from '../helpers/etcd.js';
import { eventually } from '../helpers/eventually.js';

const C = DEMO_CLUSTERS[0]!;
let etcd: EtcdCluster;
let fleet: LocalFleet;
let hubB: Child;
let urlB = '';
let agentsB = '';
let cliEnv: Record<string, string> = {};

interface Replicas {
  leader?: { id: string; api: string };
  items: { id: string; api: string; agents: string; role: string }[];
}

before(async () => {
  etcd = await startEtcd();
  fleet = await LocalFleet.create({ insecureChannel: true, insecureApi: true });
  const keyFile = join(fleet.dir, 'state.key');
  await writeFile(keyFile, randomBytes(32).toString('base64') + '\n', { mode: 0o600 });
  const store = ['--store', `etcd://${etcd.endpoints[0]}/ha-${randomUUID()}`, '--leader-lease', '2s', '--state-key-file', keyFile];
  // Replica A starts first: it leads.
  await fleet.startHub(store);
  const dirB = join(fleet.dir, 'hub-b');
  const [apiPort, agentPort] = [await freePort(), await freePort()];
  urlB = `http://127.0.0.1:${apiPort}`;
  agentsB = `127.0.0.1:${agentPort}`;
  hubB = fleet.procs.start(
    'hub-b',
    [meshfedBin(), 'hub', '--data-dir', dirB, '--listen', `127.0.0.1:${apiPort}`, '--agent-listen', agentsB, '--insecure-channel', '--insecure-api', ...store],
    fleet.env(),
  );
  await waitHttp(`${urlB}/healthz`, 'hub-b', hubB);
  const config = join(fleet.dir, 'ha.meshfed.yaml');
  await writeFile(config, stringifyYaml({ 'current-context': 'ha', contexts: [{ name: 'ha', hub: `${fleet.hubUrl},${urlB}`, token: fleet.adminToken }] }), { mode: 0o600 });
  cliEnv = { MESHFED_CONFIG: config };
  const applied = await runMeshfed(['apply', '-f', '-'], cliEnv, JSON.stringify(clusterObject(C)));
  assert.equal(applied.code, 0, applied.stderr);
  // The standby first: it answers "not the leader", and the agent moves on to the leader at once.
  await fleet.startAgent(C, { extraArgs: ['--hub', `${agentsB},${fleet.hubAgentAddr}`] });
});

after(async () => {
  await fleet?.close();
  await etcd?.stop();
});

async function replicasAt(url: string): Promise<Replicas | undefined> {
  try {
    const r = await apiFetch(`${url}/api/v1alpha1/hub/replicas`, { timeoutMs: 1000 }, { token: fleet.adminToken });
    return r.ok ? ((await r.json()) as Replicas) : undefined;
  } catch {
    return undefined;
  }
}

async function getHubs(): Promise<Replicas['items']> {
  const r = await runMeshfed(['get', 'hubs', '-o', 'json'], cliEnv);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as Replicas).items;
}

test('two replicas: one leader, one standby; the agent is on the leader; get hubs shows the roles', async () => {
  const hubs = await getHubs();
  assert.deepEqual(
    hubs.map((h) => [h.api, h.role]),
    [
      [fleet.hubUrl, 'leader'],
      [urlB, 'standby'],
    ],
  );
  const table = await runMeshfed(['get', 'hubs'], cliEnv);
  assert.match(table.stdout, /^ID\s+API\s+AGENTS\s+ROLE\s+AGE/);
  assert.match(table.stdout, /leader/);
  assert.match(table.stdout, /standby/);
  const s = await fleet.agentStatus(C.name);
  assert.equal(s.hub.connected, true);
  assert.equal(s.hub.address, fleet.hubAgentAddr);
  assert.deepEqual(s.hub.addresses, [agentsB, fleet.hubAgentAddr]);
  // What the agent heard from the standby first: UNAVAILABLE, naming the leader.
  const raw = new RawSession(agentsB, undefined, { cluster: C.name });
  try {
    await raw.closed();
    assert.equal(raw.error?.code, 14);
    const leader = hubs.find((h) => h.role === 'leader')!;
    assert.equal(raw.error?.details, `not the leader: the leader is ${leader.id} at ${fleet.hubAgentAddr}`);
  } finally {
    raw.close();
  }
});

test('the leader killed: the standby leads within ~3 s, the agent follows, the CLI writes through the survivor', async () => {
  const t0 = Date.now();
  fleet.hub!.proc.kill('SIGKILL');
  // A write right away, through both URLs: the first refuses (killed), the second answers.
  const during = await runMeshfed(['apply', '-f', '-'], cliEnv, JSON.stringify({ ...clusterObject(DEMO_CLUSTERS[1]!) }));
  assert.equal(during.code, 0, during.stderr);
  await eventually('replica B to lead', async () => ((await replicasAt(urlB))?.leader?.api === urlB ? true : undefined), 8000, 50);
  const led = Date.now() - t0;
  await fleet.waitAgent(C.name, (s) => s.hub.connected && s.hub.address === agentsB, 8000);
  const followed = Date.now() - t0;
  console.log(`failover: B leads ${led} ms after the kill -9; the agent is connected to B after ${followed} ms`);
  assert.ok(led < 3500, `the standby took ${led} ms to lead`);
  // The dead replica's registration went with its lease.
  const hubs = await getHubs();
  assert.deepEqual(
    hubs.map((h) => [h.api, h.role]),
    [[urlB, 'leader']],
  );
  // A takeover demotes nobody: the cluster is Live and connected again.
  await eventually(
    'the cluster to show its agent connected to B',
    async () => {
      const r = await runMeshfed(['get', 'cluster', C.name, '-o', 'json'], cliEnv);
      const c = JSON.parse(r.stdout) as { status?: { agent?: { connected?: boolean }; liveness?: { state?: string } } };
      return c.status?.agent?.connected === true && c.status.liveness?.state === 'Live' ? true : undefined;
    },
    8000,
    200,
  );
  const afterKill = await runMeshfed(['get', 'cluster', DEMO_CLUSTERS[1]!.name], cliEnv);
  assert.equal(afterKill.code, 0, afterKill.stderr);
});
