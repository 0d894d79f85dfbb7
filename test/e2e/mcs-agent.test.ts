// The agent runs the MCS importer (AgentOptions.mcsImport): an in-process hub
// (plaintext channel: this is about the wiring, not trust) and two agents;
// a workload registered in cluster1 appears, through the hub's view, as a
// ServiceImport and an EndpointSlice in cluster3's Kubernetes API server (the
// stand-in of test/helpers/kube-apiserver, read with the real kubectl), the
// agent's status carries the importer's, and a deregistration removes them.
// Skipped, saying so, when kubectl is not installed.
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { parse as parseYaml } from 'yaml';
import { Agent } from '../../src/agent/agent.js';
import { Hub } from '../../src/hub/hub.js';
import { KubeApiServer } from '../helpers/kube-apiserver/server.js';
import { cluster } from '../helpers/mesh-fixture.js';
import { KUBECTL_SKIP, Kubectl } from '../helpers/kubectl.js';

const skip = KUBECTL_SKIP;

let dir: string;
let hub: Hub;
let api: KubeApiServer;
let kubeconfig: string;
const agents: Agent[] = [];

before(async () => {
  if (skip) return;
  dir = await mkdtemp(join(tmpdir(), 'mcs-agent-'));
  hub = await Hub.start({ dataDir: join(dir, 'hub'), api: { host: '127.0.0.1', port: 0 }, agents: { host: '127.0.0.1', port: 0 }, insecureChannel: true });
  await hub.store.commit([cluster('cluster1', 'us-east1', ['us-east1-a']), cluster('cluster3', 'eu-west1', ['eu-west1-a'])].map((object) => ({ type: 'put' as const, object })));
  api = await KubeApiServer.start();
  kubeconfig = join(dir, 'kubeconfig');
  await api.kubeconfig(kubeconfig);
  await kubectl('create', 'namespace', 'sample');
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfig);
  for (const [name, mcs] of [
    ['cluster1', undefined],
    ['cluster3', { kubeConfig: kc }],
  ] as const) {
    agents.push(
      await Agent.start({
        cluster: name,
        hub: `127.0.0.1:${hub.agentAddress.port}`,
        xds: { host: '127.0.0.1', port: 0 },
        api: { host: '127.0.0.1', port: 0 },
        dataDir: join(dir, name),
        insecureChannel: true,
        ...(mcs ? { mcsImport: mcs } : {}),
      }),
    );
  }
});

after(async () => {
  for (const a of agents) await a.stop();
  await hub?.stop();
  await api?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const kubectl = (...args: string[]): Promise<string> => new Kubectl(kubeconfig, dir).ok(args);

async function eventually<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; agent status ${JSON.stringify(agents[1]?.status().mcsImport)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

interface Obj {
  kind: string;
  metadata: { name: string };
  endpoints?: { addresses: string[] }[];
}

const imported = async (): Promise<Obj[]> => (parseYaml(await kubectl('get', 'serviceimports,endpointslices', '-n', 'sample', '-o', 'yaml')) as { items: Obj[] }).items;

it('a service registered in cluster1 is imported into cluster3’s Kubernetes cluster, and removed when it goes', { skip }, async () => {
  const [c1, c3] = agents as [Agent, Agent];
  await c1.registrations.register({ namespace: 'sample', service: 'helloworld', address: '10.1.0.1:50051', servicePort: 8080 });
  const items = await eventually('the import in cluster3', async () => {
    const items = await imported();
    return items.some((o) => o.kind === 'EndpointSlice') ? items : undefined;
  });
  assert.deepEqual(
    items.map((o) => o.kind),
    ['ServiceImport', 'EndpointSlice'],
  );
  assert.deepEqual(
    items[1]!.endpoints!.map((e) => e.addresses[0]),
    ['10.1.0.1'],
  );
  const st = c3.status().mcsImport!;
  assert.ok(st.lastSuccess, JSON.stringify(st));
  assert.equal(st.objects.serviceImports, 1);
  assert.equal(c1.status().mcsImport, undefined, 'an agent without mcsImport runs no importer');
  await c1.registrations.deregister({ namespace: 'sample', name: c1.registrations.list()[0]!.metadata.name });
  await eventually('the import removed', async () => ((await imported()).length === 0 ? true : undefined));
});
