// EtcdStore on a local etcd (one member, loopback): latency of single-object
// commits (p50/p99) and the time to open a store of 10k objects.
// Run: npx tsc -p tsconfig.json && node dist/bench/etcd-store.js [commits] [objects]
import { EtcdStore } from '../src/store/etcd-store.js';
import { startEtcd } from '../test/helpers/etcd.js';
import { cluster, service } from '../test/helpers/store-conformance.js';

const commits = Number(process.argv[2] ?? 1000);
const objects = Number(process.argv[3] ?? 10_000);
const etcd = await startEtcd();
try {
  const s = await EtcdStore.open({ endpoints: etcd.endpoints, prefix: '/bench-commit' });
  const lat: number[] = [];
  for (let i = 0; i < commits; i++) {
    const t = performance.now();
    await s.commit([{ type: 'put', object: cluster(`c${i % 100}`, `r${i}`) }]);
    lat.push(performance.now() - t);
  }
  await s.close();
  lat.sort((a, b) => a - b);
  const q = (p: number): string => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))]!.toFixed(2);

  const w = await EtcdStore.open({ endpoints: etcd.endpoints, prefix: '/bench-open' });
  for (let i = 0; i < objects; i += 500) {
    await w.commit(Array.from({ length: Math.min(500, objects - i) }, (_, j) => ({ type: 'put' as const, object: service(`s${i + j}`, `c${(i + j) % 10}`, 'ns') })));
  }
  await w.close();
  const t = performance.now();
  const r = await EtcdStore.open({ endpoints: etcd.endpoints, prefix: '/bench-open' });
  const openMs = performance.now() - t;
  const n = await r.count();
  await r.close();
  console.log(JSON.stringify({ commits, commitP50Ms: q(0.5), commitP99Ms: q(0.99), objects: n, openMs: openMs.toFixed(0) }));
} finally {
  await etcd.stop();
}
