// `meshfed demo`: three clusters on this machine behaving as one mesh.
//
// hub + agents cluster1..3 (one network, three zones) + helloworld v1/v2/v3
// (one per cluster, real gRPC xDS servers) + a client in cluster1 calling
// xds:///helloworld.sample. It shows the live distribution per cluster/version,
// drains cluster1 (deregisters its endpoints: traffic moves with no failed
// call), brings it back, shifts traffic with a TrafficPolicy (75/25), shows
// affinity local with a FailoverPolicy failing over to the same region and
// back, denies then allows the client with AccessPolicies (explaining each
// verdict). Every phase runs once, then it prints the summary and exits (0
// when no call failed but the ones denied on purpose); with keepRunning it
// stays up after the last phase until Ctrl-C. Ctrl-C at any time stops it.
import { API_VERSION, type ApiObject } from '../api/index.js';
import { formatExplain, type ExplainResult } from '../analysis/explain.js';
import { DEMO_CLUSTERS, HELLOWORLD_PORT, LocalFleet, type ServerHandle } from './fleet.js';
import { errorMessage } from '../util/errors.js';

interface Tick {
  ok: number;
  failed: number;
  byBackend: Record<string, number>;
  errors: Record<string, number>;
}

const out = (s: string) => process.stdout.write(s + '\n');

export async function runDemo(opts: { keepRunning?: boolean; rate: number }): Promise<number> {
  const started = Date.now();
  const fleet = await LocalFleet.create({ echoStderr: process.env.MESHFED_DEMO_VERBOSE === '1' });
  let stopping = false;
  const stop = async (code: number): Promise<number> => {
    if (stopping) return code;
    stopping = true;
    out('\nstopping: every process started by the demo is being stopped');
    await fleet.close();
    return code;
  };
  const interrupted = new Promise<'interrupted'>((resolve) => {
    process.once('SIGINT', () => resolve('interrupted'));
    process.once('SIGTERM', () => resolve('interrupted'));
  });

  try {
    out(`meshfed demo: temporary data in ${fleet.dir}`);
    step('starting the hub');
    await fleet.startHub();
    out(`  hub API ${fleet.hubUrl} (HTTPS; the admin credential: MESHFED_CONFIG=${fleet.hubDataDir}/admin.meshfed.yaml meshfed get clusters), agent channel ${fleet.hubAgentAddr}`);

    step('creating the mesh (meshfed apply) and three clusters, each with a one-time join token (meshfed cluster add)');
    const applied = await fleet.apply([{ apiVersion: API_VERSION, kind: 'Mesh', metadata: { name: 'default' }, spec: { trustDomain: 'meshfed.local', mtls: { mode: 'STRICT' } } }]);
    for (const r of applied.results) out(`  ${r.object} ${r.outcome}`);
    for (const c of DEMO_CLUSTERS) {
      const t = await fleet.addCluster(c);
      out(`  Cluster ${c.name} ${t.created ? 'created' : 'exists'}; join token ${t.tokenId ?? '-'} (single use, expires ${t.expiresAt ?? '-'})`);
    }

    step('starting one agent per cluster: each joins with its token (mTLS from then on) and gets its intermediate CA');
    // Started side by side (each is a process that takes a second or two to start), reported in order.
    const agents = await Promise.all(
      DEMO_CLUSTERS.map(async (c) => {
        const a = await fleet.startAgent(c);
        await fleet.waitAgent(c.name, (s) => s.trust.intermediate !== undefined);
        return a;
      }),
    );
    for (const [i, c] of DEMO_CLUSTERS.entries()) {
      const a = agents[i]!;
      out(`  ${c.name}: region ${c.region}, zone ${c.zones.join(',')}, network ${c.network}; xDS 127.0.0.1:${a.xdsPort}, API ${a.apiUrl}`);
      const t = (await fleet.agentStatus(c.name)).trust;
      out(`    agent certificate ${t.agentCert?.spiffeId ?? '-'}; intermediate CA ${t.intermediate!.spiffeId} (expires ${t.intermediate!.notAfter})`);
    }

    step('starting helloworld xDS servers: v1 in cluster1, v2 in cluster2, v3 in cluster3, each with its identity (meshfed identity run, meshfed register)');
    // max_connection_age: see docs/access.md (a connection must not keep old access rules for long).
    const servers: ServerHandle[] = await Promise.all(
      DEMO_CLUSTERS.map((c, i) => fleet.startServer(c.name, { name: `helloworld-v${i + 1}`, version: `v${i + 1}`, identity: true, maxConnectionAgeMs: 30_000 })),
    );
    for (const [i, c] of DEMO_CLUSTERS.entries()) {
      const s = servers[i]!;
      out(`  ${s.name} serving mTLS at ${s.address} in ${c.name} as spiffe://meshfed.local/cluster/${c.name}/ns/sample/sa/helloworld`);
    }

    step(`starting a gRPC client in cluster1 with its identity: xds:///helloworld.sample at ${opts.rate} calls/s, mTLS (STRICT)`);
    const clientId = await fleet.startIdentity('cluster1', 'sample', 'demo-client', 'demo-client');
    const clientBootstrap = await fleet.bootstrap('cluster1', 'sample', 'demo-client', false, clientId.dir);
    const client = fleet.startClient('cluster1', clientBootstrap, { target: 'xds:///helloworld.sample', rate: opts.rate, name: 'demo' });

    const totals: Tick = { ok: 0, failed: 0, byBackend: {}, errors: {} };
    let phase = 'all three clusters';
    // Calls an AccessPolicy denies on purpose: expected from the access step on, not failures.
    let accessStep = false;
    let denied = 0;
    let shownPeer = false;
    client.onEvent((e) => {
      if (e.event !== 'tick') return;
      const t = e as unknown as Tick;
      const peer = Object.keys((e as { peers?: Record<string, number> }).peers ?? {})[0];
      if (peer && !shownPeer) {
        shownPeer = true;
        out(`  the servers see the client as ${peer} (mTLS)`);
      }
      totals.ok += t.ok;
      for (const [k, v] of Object.entries(t.byBackend)) totals.byBackend[k] = (totals.byBackend[k] ?? 0) + v;
      for (const [k, v] of Object.entries(t.errors)) {
        if (accessStep && k.startsWith('PERMISSION_DENIED')) denied += v;
        else {
          totals.failed += v;
          totals.errors[k] = (totals.errors[k] ?? 0) + v;
        }
      }
      out(formatTick(Math.round((Date.now() - started) / 1000), phase, t));
    });

    const sleep = (ms: number) => Promise.race([new Promise<'slept'>((r) => setTimeout(() => r('slept'), ms)), interrupted, client.exited.then(() => 'client-exited' as const)]);
    /** meshfed register helloworld-v1 again (after it was drained or lost). */
    const registerV1 = async (): Promise<void> => {
      const s = servers[0]!;
      await fleet.register('cluster1', {
        name: s.name,
        namespace: 'sample',
        service: 'helloworld',
        address: s.address,
        servicePort: HELLOWORLD_PORT,
        labels: { version: 'v1' },
        serviceAccount: 'helloworld',
      });
    };
    const script: { afterMs: number; run: () => Promise<void> }[] = [
      {
        afterMs: 6000,
        run: async () => {
          step('draining cluster1: meshfed deregister --name helloworld-v1 (cluster1 agent)');
          await fleet.deregister('cluster1', { namespace: 'sample', name: 'helloworld-v1' });
          phase = 'cluster1 drained';
        },
      },
      {
        afterMs: 6000,
        run: async () => {
          step('bringing cluster1 back: meshfed register helloworld-v1');
          await registerV1();
          phase = 'all three clusters';
        },
      },
      {
        afterMs: 5000,
        run: async () => {
          step('traffic shift: TrafficPolicy helloworld-shift sends 75% to cluster2 (v2) and 25% to cluster3 (v3)');
          await fleet.apply([
            {
              apiVersion: API_VERSION,
              kind: 'TrafficPolicy',
              metadata: { name: 'helloworld-shift', namespace: 'sample' },
              spec: {
                destinations: [{ name: 'helloworld' }],
                routes: [
                  {
                    split: [
                      { cluster: 'cluster2', weight: 75 },
                      { cluster: 'cluster3', weight: 25 },
                    ],
                  },
                ],
              },
            },
          ]);
          phase = 'shift 75/25';
        },
      },
      {
        afterMs: 6000,
        run: async () => {
          step("failover: delete the shift; FailoverPolicy affinity local keeps cluster1's calls in cluster1");
          await fleet.hubFetch('/api/v1alpha1/trafficpolicies/helloworld-shift?namespace=sample', { method: 'DELETE' });
          await fleet.apply([
            { apiVersion: API_VERSION, kind: 'FailoverPolicy', metadata: { name: 'helloworld-local', namespace: 'sample' }, spec: { destinations: [{ name: 'helloworld' }], affinity: 'local' } },
          ]);
          phase = 'affinity local';
        },
      },
      {
        afterMs: 5000,
        run: async () => {
          step("losing cluster1's endpoint: fails over to cluster2 (same region) before cluster3");
          await fleet.deregister('cluster1', { namespace: 'sample', name: 'helloworld-v1' });
          phase = 'cluster1 lost';
        },
      },
      {
        afterMs: 5000,
        run: async () => {
          step('cluster1 back: traffic returns to the local cluster');
          await registerV1();
          phase = 'affinity local';
        },
      },
      {
        afterMs: 5000,
        run: async () => {
          step('access: AccessPolicy no-demo-client DENIES cluster1/sample/demo-client -> helloworld; meshfed explain says why');
          accessStep = true;
          await fleet.apply([
            accessPolicy('no-demo-client', { action: 'DENY', destinations: [{ name: 'helloworld' }], sources: [{ cluster: 'cluster1', namespace: 'sample', serviceAccount: 'demo-client' }] }),
          ]);
          phase = 'access denied';
          await explainDemo(fleet);
        },
      },
      {
        afterMs: 5000,
        run: async () => {
          step('access: delete the DENY; AccessPolicy helloworld-callers ALLOWS only cluster1 callers (any other caller now gets PERMISSION_DENIED)');
          await fleet.hubFetch('/api/v1alpha1/accesspolicies/no-demo-client?namespace=sample', { method: 'DELETE' });
          await fleet.apply([accessPolicy('helloworld-callers', { action: 'ALLOW', destinations: [{ name: 'helloworld' }], sources: [{ cluster: 'cluster1' }] })]);
          phase = 'access allowed';
          await explainDemo(fleet);
        },
      },
    ];
    let reason: string = 'slept';
    for (const s of script) {
      reason = await sleep(s.afterMs);
      if (reason !== 'slept') break;
      await s.run();
    }
    // The last phase gets its seconds of traffic too.
    if (reason === 'slept') reason = await sleep(5000);
    if (reason === 'slept' && opts.keepRunning) {
      out('\nevery phase shown; running until Ctrl-C (--keep-running)');
      while (reason === 'slept') reason = await sleep(2 ** 31 - 1);
    }
    if (reason === 'client-exited') throw new Error(`the client exited unexpectedly:\n${client.stderrTail.slice(-10).join('\n')}`);
    await fleet.procs.stop(client);

    out('\nsummary');
    out(`  calls ok: ${totals.ok}, failed: ${totals.failed}`);
    for (const [k, v] of Object.entries(totals.byBackend).sort()) out(`  ${k.padEnd(14)} ${v}`);
    for (const [k, v] of Object.entries(totals.errors)) out(`  error ${k}: ${v}`);
    if (denied > 0) out(`  denied by the AccessPolicy (on purpose): ${denied}`);
    return await stop(totals.failed === 0 && totals.ok > 0 ? 0 : 1);
  } catch (err) {
    process.stderr.write(`demo failed: ${errorMessage(err)}\n`);
    return await stop(1);
  }
}

function accessPolicy(name: string, spec: Record<string, unknown>): ApiObject {
  return { apiVersion: API_VERSION, kind: 'AccessPolicy', metadata: { name, namespace: 'sample' }, spec };
}

/** `meshfed explain --from cluster1/sample/demo-client --to helloworld.sample`, printed indented. */
async function explainDemo(fleet: LocalFleet): Promise<void> {
  const r = await fleet.hubFetch('/api/v1alpha1/explain', {
    method: 'POST',
    body: JSON.stringify({
      from: { cluster: 'cluster1', namespace: 'sample', workload: 'demo-client', serviceAccount: 'demo-client' },
      to: 'helloworld.sample',
      method: 'helloworld.Greeter/SayHello',
    }),
  });
  if (!r.ok) {
    out(`  explain failed: ${await r.text()}`);
    return;
  }
  out('  meshfed explain --from cluster1/sample/demo-client --service-account demo-client --to helloworld.sample --method helloworld.Greeter/SayHello');
  for (const l of formatExplain((await r.json()) as ExplainResult)
    .trimEnd()
    .split('\n'))
    out(`    ${l}`);
}

function step(s: string): void {
  out(`\n==> ${s}`);
}

function formatTick(t: number, phase: string, tick: Tick): string {
  const total = tick.ok + tick.failed;
  const parts = Object.entries(tick.byBackend)
    .sort()
    .map(([k, v]) => `${k} ${pct(v, total).padStart(4)} ${bar(v, total)}`);
  // PERMISSION_DENIED comes from an AccessPolicy (the access step): shown apart from failures.
  const denied = Object.entries(tick.errors)
    .filter(([k]) => k.startsWith('PERMISSION_DENIED'))
    .reduce((n, [, v]) => n + v, 0);
  const failed = (tick.failed > denied ? `  FAILED ${tick.failed - denied}` : '') + (denied ? `  DENIED ${denied} (PERMISSION_DENIED)` : '');
  return `  t=${String(t).padStart(3)}s  [${phase}]  ${total} calls: ${parts.join('  ')}${failed}`;
}

function pct(v: number, total: number): string {
  return total ? `${Math.round((100 * v) / total)}%` : '-';
}

function bar(v: number, total: number): string {
  return '#'.repeat(total ? Math.round((10 * v) / total) : 0).padEnd(10, '.');
}
