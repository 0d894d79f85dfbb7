// The `hostile` benchmark point (npm run bench -- --point hostile): a real hub
// under the requests that froze or grew it before issue 11, measuring
//   1. its worst event-loop stall (the hub's own monitorEventLoopDelay, read
//      from GET /api/v1alpha1/hub; target <= 100 ms) under hostile requests:
//      2 MB of nested JSON, 200k YAML documents, an alias bomb, an undefined
//      alias, a 4 MiB body, a plan of 20k policies, a plan and an apply of the
//      1,000 objects a request may hold, all sent several at a time;
//   2. its RSS growth (target <= +64 MB) with 100 watchers that never read
//      while changes are written (each change ~200 KB of events per watcher).
// Progress to stderr, the table to stdout; exit code 1 when a target is missed.
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { API_VERSION, type ApiObject } from '../src/api/index.js';
import { LocalFleet } from '../src/demo/fleet.js';
import { settledRss } from './proc.js';

const TARGETS = { stallMs: 100, rssGrowthMB: 64 };
const WATCHERS = Number(process.env.HOSTILE_WATCHERS ?? 100);
const ROUNDS = 5;

function progress(msg: string): void {
  process.stderr.write(`[hostile] ${msg}\n`);
}

const cluster = (i: number, note = ''): ApiObject => ({
  apiVersion: API_VERSION,
  kind: 'Cluster',
  metadata: { name: `c${i}`, ...(note ? { annotations: { note } } : {}) },
  spec: { region: 'r1', zones: ['z1'] },
});

const policy = (i: number): ApiObject => ({
  apiVersion: API_VERSION,
  kind: 'TrafficPolicy',
  metadata: { name: `p${i}`, namespace: 'default' },
  spec: {},
});

/** The hostile request bodies, by name: each was a freeze, a crash or a 500 before. */
function hostileRequests(): { name: string; path: string; body: string }[] {
  const n = 1_000_000;
  const bomb = ['a: &a [x,x,x,x,x,x,x,x,x]', 'b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]', 'c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]', 'd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]', 'e: [*d,*d,*d,*d,*d,*d,*d,*d,*d]'].join(
    '\n',
  );
  return [
    { name: 'nested JSON 2 MB', path: '/api/v1alpha1/apply', body: '['.repeat(n) + ']'.repeat(n) },
    { name: 'nested objects 1 MB', path: '/api/v1alpha1/apply', body: '{"a":'.repeat(200_000) + '1' + '}'.repeat(200_000) },
    { name: '200k YAML documents', path: '/api/v1alpha1/apply', body: 'a: 1\n---\n'.repeat(200_000) },
    { name: 'alias bomb', path: '/api/v1alpha1/apply', body: bomb },
    { name: 'undefined alias', path: '/api/v1alpha1/apply', body: 'metadata: *nope\n' },
    { name: '4 MiB body', path: '/api/v1alpha1/apply', body: 'x'.repeat(4 * 1024 * 1024) },
    { name: 'plan of 20k policies', path: '/api/v1alpha1/plan', body: JSON.stringify(Array.from({ length: 20_000 }, (_, i) => policy(i))) },
    { name: 'plan of 1000 Clusters', path: '/api/v1alpha1/plan', body: JSON.stringify(Array.from({ length: 1000 }, (_, i) => cluster(i))) },
    { name: 'plan of 200 Clusters', path: '/api/v1alpha1/plan', body: JSON.stringify(Array.from({ length: 200 }, (_, i) => cluster(i))) },
    { name: 'nested explain', path: '/api/v1alpha1/explain', body: JSON.stringify({ with: [] }).replace('[]', '['.repeat(100_000) + ']'.repeat(100_000)) },
  ];
}

async function hubStats(fleet: LocalFleet, reset = false): Promise<{ eventLoop: { maxMs: number; p99Ms: number } }> {
  const r = await fleet.hubFetch(`/api/v1alpha1/hub${reset ? '?resetEventLoop=1' : ''}`);
  return (await r.json()) as { eventLoop: { maxMs: number; p99Ms: number } };
}

/** A watch request on a raw socket that is never read: the hub's writes pile up. */
function stalledWatcher(url: URL, token: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(Number(url.port), url.hostname, () => {
      s.write(`GET /api/v1alpha1/clusters?watch=1 HTTP/1.1\r\nHost: ${url.host}\r\nAuthorization: Bearer ${token}\r\n\r\n`);
      s.pause();
      resolve(s);
    });
    s.on('error', reject);
  });
}

export async function runHostile(): Promise<number> {
  // --expose-gc: a full GC before each RSS reading (POST /hub/gc), so garbage does not count as growth.
  process.env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ''} --expose-gc`.trim();
  // Plain HTTP on loopback (--insecure-api) keeps the raw-socket watchers simple; every request still carries the admin token.
  const fleet = await LocalFleet.create({ insecureChannel: true, insecureApi: true });
  try {
    await fleet.startHub();
    const pid = fleet.hub!.proc.pid!;
    progress(`hub ${fleet.hubUrl} pid ${pid}`);
    await fleet.apply([{ apiVersion: API_VERSION, kind: 'Mesh', metadata: { name: 'default' }, spec: { mtls: { mode: 'DISABLE' } } }]);

    // 1. Event-loop stall under hostile requests: each alone (its own worst stall), then all at once.
    const answers = new Map<string, { status: number; ms: number; stallMs: number }>();
    const send = async (h: { path: string; body: string }): Promise<{ status: number; ms: number }> => {
      const t0 = performance.now();
      const r = await fleet.hubFetch(h.path, { method: 'POST', body: h.body, headers: { 'content-type': 'application/json' } }).catch(() => undefined);
      await r?.text().catch(() => '');
      return { status: r?.status ?? 0, ms: performance.now() - t0 };
    };
    for (const h of hostileRequests()) {
      await hubStats(fleet, true);
      let worst = { status: 0, ms: 0 };
      for (let round = 0; round < ROUNDS; round++) {
        const a = await send(h);
        if (a.ms >= worst.ms) worst = a;
      }
      answers.set(h.name, { ...worst, stallMs: (await hubStats(fleet)).eventLoop.maxMs });
    }
    await hubStats(fleet, true);
    await Promise.all(hostileRequests().map((h) => send(h)));
    answers.set('all of the above at once', { status: 0, ms: 0, stallMs: (await hubStats(fleet)).eventLoop.maxMs });
    await hubStats(fleet, true);
    // One real apply of the most a request may hold: legitimate, heavy work.
    const t0 = performance.now();
    const applied = await fleet.hubFetch('/api/v1alpha1/apply', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(Array.from({ length: 1000 }, (_, i) => cluster(i))),
    });
    await applied.text();
    answers.set('apply of 1000 Clusters', { status: applied.status, ms: performance.now() - t0, stallMs: (await hubStats(fleet)).eventLoop.maxMs });
    const stall = { maxMs: Math.max(...[...answers.values()].map((a) => a.stallMs)) };
    for (const [name, a] of answers) progress(`${name.padEnd(26)} ${String(a.status).padStart(4)} ${a.ms.toFixed(0).padStart(6)} ms answer, ${a.stallMs.toFixed(0).padStart(4)} ms worst stall`);

    // 2. RSS with stalled watchers while changes are written.
    const gc = async () => void (await (await fleet.hubFetch('/api/v1alpha1/hub/gc', { method: 'POST', headers: { 'content-type': 'application/json' } })).text());
    await gc();
    const before = await settledRss(pid);
    const url = new URL(fleet.hubUrl);
    const sockets = await Promise.all(Array.from({ length: WATCHERS }, () => stalledWatcher(url, fleet.adminToken)));
    const note = 'n'.repeat(2000);
    for (let round = 0; round < 20; round++) {
      // 100 Clusters with a 2 KB annotation: ~250 KB of events per watcher per round.
      const r = await fleet.hubFetch('/api/v1alpha1/apply', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(Array.from({ length: 100 }, (_, i) => cluster(i, `${note}${round}`))),
      });
      await r.text();
    }
    await new Promise((r) => setTimeout(r, 2000));
    await gc();
    const afterRss = await settledRss(pid);
    const dropped = readFileSync(join(fleet.logDir, 'hub.log'), 'utf8').split('slow watcher dropped').length - 1;
    for (const s of sockets) s.destroy();

    const growthMB = (afterRss - before) / 2 ** 20;
    const ok = (b: boolean) => (b ? 'ok' : 'MISSED');
    const rows = [
      ['measure', 'value', 'target', ''],
      ['hub event-loop stall max', `${stall.maxMs} ms`, `<= ${TARGETS.stallMs} ms`, ok(stall.maxMs <= TARGETS.stallMs)],
      ['hub RSS before watchers', `${(before / 2 ** 20).toFixed(0)} MB`, '', ''],
      [`hub RSS growth, ${WATCHERS} stalled watchers`, `${growthMB >= 0 ? '+' : ''}${growthMB.toFixed(1)} MB`, `<= +${TARGETS.rssGrowthMB} MB`, ok(growthMB <= TARGETS.rssGrowthMB)],
      ['stalled watchers dropped', `${dropped} of ${WATCHERS}`, '', ''],
    ];
    const w = [0, 1, 2, 3].map((c) => Math.max(...rows.map((r) => r[c]!.length)));
    process.stdout.write(rows.map((r) => r.map((x, c) => x.padEnd(w[c]!)).join('  ')).join('\n') + '\n');
    return stall.maxMs <= TARGETS.stallMs && growthMB <= TARGETS.rssGrowthMB ? 0 : 1;
  } finally {
    await fleet.close();
  }
}
