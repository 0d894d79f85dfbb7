// Backup, restore and store migrate over FileStores in temp dirs, through the
// real CLI where a user relies on it (exit codes, messages, the file's mode):
// a round trip keeps every object of every kind with its metadata, the audit
// chain verifies after restore, a non-empty target and a locked directory are
// refused, a damaged or foreign file is refused naming what is wrong; and the
// import's own rules (restore puts keep identity, batches split when too large,
// a failed import leaves the targets empty).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { API_VERSION, type ApiObject } from '../../src/api/meta.js';
import { AuditLog, verifyStoredChain } from '../../src/audit/log.js';
import { readBackup } from '../../src/store/backup-file.js';
import { copyHubStores, importObjects } from '../../src/store/copy.js';
import { FileStore } from '../../src/store/file-store.js';
import type { CommitResult, Store, StoreOp } from '../../src/store/store.js';
import { MeshfedError } from '../../src/util/errors.js';
import { runMeshfed } from '../helpers/cli.js';

const quiet = { warn: () => undefined, error: () => undefined };
let root: string;
/** The source hub's data directory, and what its two stores held (closed before the tests). */
let src: string;
let want: { main: ApiObject[]; audit: ApiObject[] };

const withoutRv = (o: ApiObject): ApiObject => {
  const { resourceVersion: _rv, ...metadata } = o.metadata;
  return { ...o, metadata };
};
const sorted = (objects: readonly ApiObject[]): ApiObject[] => [...objects].map(withoutRv).sort((a, b) => (`${a.kind}/${a.metadata.name}` < `${b.kind}/${b.metadata.name}` ? -1 : 1));

async function contents(dir: string): Promise<{ main: ApiObject[]; audit: ApiObject[] }> {
  const main = await FileStore.open(dir, { logger: quiet });
  const audit = await FileStore.open(join(dir, 'audit'), { logger: quiet });
  try {
    return { main: sorted(main.scan().objects), audit: sorted(audit.scan().objects) };
  } finally {
    await main.close();
    await audit.close();
  }
}

function obj(kind: string, name: string, spec: unknown, extra: Partial<ApiObject['metadata']> = {}): ApiObject {
  return { apiVersion: API_VERSION, kind, metadata: { name, ...extra }, spec } as ApiObject;
}

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'meshfed-backup-'));
  src = join(root, 'src');
  const main = await FileStore.open(src, { logger: quiet });
  await main.commit([
    { type: 'put', object: obj('Cluster', 'c1', { network: 'n1', region: 'r1' }, { labels: { env: 'prod' }, annotations: { note: 'x' } }) },
    { type: 'put', object: obj('TrafficPolicy', 'tp', { host: 'a' }, { namespace: 'default' }) },
    // Internal kinds (trust state, credentials) are copied like any other.
    { type: 'put', object: obj('TrustRoot', 'root', { encryptedKey: 'abc' }) },
  ]);
  // generation 3 and a status: metadata that only the store sets.
  for (const host of ['b', 'c']) await main.commit([{ type: 'put', object: obj('TrafficPolicy', 'tp', { host }, { namespace: 'default' }) }]);
  const c1 = (await main.get({ kind: 'Cluster', name: 'c1' }))!;
  await main.commit([{ type: 'put', object: { ...c1, status: { phase: 'Ready' } } }]);
  const audit = await FileStore.open(join(src, 'audit'), { logger: quiet });
  // Retention past 5 records: the anchor is no longer the genesis.
  const log = await AuditLog.open(audit, { sweepEveryMs: 0, maxRecords: 5 });
  for (let i = 0; i < 8; i++) {
    await log.record({ time: new Date().toISOString(), who: 'user:alice', from: '127.0.0.1:1', request: 'POST /apply', verb: 'update', kind: 'Cluster', object: `c${i}`, outcome: 'allowed' });
  }
  await log.close();
  await audit.close();
  await main.close();
  want = await contents(src);
  assert.equal(want.main.length, 3);
  assert.equal(want.audit.length, 6); // 5 records and the anchor
  assert.equal(want.main.find((o) => o.kind === 'TrafficPolicy')!.metadata.generation, 3);
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

test('backup then restore into a fresh directory: every object identical (uid, creationTimestamp, generation, labels, annotations, status), the audit chain verifies', async () => {
  const file = join(root, 'hub.backup.jsonl.gz');
  const b = await runMeshfed(['backup', '--store', src, '-f', file], {});
  assert.equal(b.code, 0, b.stderr);
  assert.match(b.stderr, /secret/);
  assert.match(b.stdout, /main\s+TrafficPolicy\s+1/);
  assert.equal((await stat(file)).mode & 0o777, 0o600);
  // A second backup to the same name is refused: a backup never overwrites.
  const again = await runMeshfed(['backup', '--store', src, '-f', file], {});
  assert.equal(again.code, 5, again.stderr);

  const dest = join(root, 'restored');
  const r = await runMeshfed(['restore', '-f', file, '--store', dest, '-o', 'json'], {});
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout) as { verified: boolean; auditChain: { ok: boolean; records: number } };
  assert.equal(report.verified, true);
  assert.deepEqual(report.auditChain.ok, true);
  const got = await contents(dest);
  assert.deepEqual(got, want);
  assert.equal(verifyStoredChain(got.audit).ok, true);
  // What `meshfed audit verify` walks at the hub: the log over the restored store, from its anchor to its head.
  const audit = await FileStore.open(join(dest, 'audit'), { logger: quiet });
  try {
    const log = await AuditLog.open(audit, { sweepEveryMs: 0 });
    const verdict = await log.verify();
    await log.close();
    assert.equal(verdict.ok, true, JSON.stringify(verdict));
    assert.equal(verdict.records, 5);
    assert.equal(verdict.anchor.seq, 3);
  } finally {
    await audit.close();
  }

  // Into it again: not empty, refused naming what is there.
  const twice = await runMeshfed(['restore', '-f', file, '--store', dest], {});
  assert.equal(twice.code, 5, twice.stderr);
  assert.match(twice.stderr, /not empty: it holds 3 objects \(Cluster\/\/\/c1/);
});

test('store migrate to a directory verifies; a locked source (a hub on it) is refused: stop the hub', async () => {
  const dest = join(root, 'migrated');
  const m = await runMeshfed(['store', 'migrate', '--from', src, '--to', dest], {});
  assert.equal(m.code, 0, m.stderr);
  assert.match(m.stdout, /^STORE\s+KIND\s+OBJECTS/);
  assert.match(m.stdout, /verified: every object is identical/);
  assert.match(m.stdout, /audit chain: verifies \(5 records\)/);
  assert.deepEqual(await contents(dest), want);

  const held = await FileStore.open(src, { logger: quiet });
  try {
    const locked = await runMeshfed(['store', 'migrate', '--from', src, '--to', join(root, 'other')], {});
    assert.equal(locked.code, 5, locked.stderr);
    assert.match(locked.stderr, /locked by process .*Stop the hub first/);
  } finally {
    await held.close();
  }
  const same = await runMeshfed(['store', 'migrate', '--from', src, '--to', src], {});
  assert.equal(same.code, 2, same.stderr);
});

test('a damaged or foreign backup file is refused, naming what is wrong', async () => {
  const file = join(root, 'plain.jsonl');
  assert.equal((await runMeshfed(['backup', '--store', src, '-f', file], {})).code, 0);
  const lines = (await readFile(file, 'utf8')).trimEnd().split('\n');
  const cases: [string, string, RegExp][] = [
    ['truncated.jsonl', lines.slice(0, -2).join('\n') + '\n', /truncated: it ends at line \d+ without the end line/],
    ['torn.jsonl', lines.join('\n').slice(0, -20), /line \d+: bad JSON .*the file is truncated/],
    ['badline.jsonl', [...lines.slice(0, 2), '{"store":', ...lines.slice(3)].join('\n'), /line 3: bad JSON/],
    ['edited.jsonl', lines.join('\n').replace('"network":"n1"', '"network":"n2"'), /checksum mismatch/],
    ['newer.jsonl', [lines[0]!.replace('"version":1', '"version":2'), ...lines.slice(1)].join('\n'), /format version 2 is not supported/],
    ['foreign.json', '{"kind":"List","items":[]}\n', /not a meshfed backup/],
    ['gz-cut.gz', gzipSync(lines.join('\n')).subarray(0, 200).toString('latin1'), /damaged or truncated gzip/],
  ];
  for (const [name, text, message] of cases) {
    const f = join(root, name);
    await writeFile(f, name.endsWith('.gz') ? Buffer.from(text, 'latin1') : text);
    await assert.rejects(readBackup(f), (err: unknown) => err instanceof MeshfedError && err.code === 'invalid' && message.test(err.message) && err.message.includes(f), name);
  }
  // Through the CLI: exit 1, the target left untouched.
  const target = join(root, 'r-truncated');
  const r = await runMeshfed(['restore', '-f', join(root, 'truncated.jsonl'), '--store', target], {});
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /truncated/);
  await assert.rejects(stat(target), /ENOENT/);
});

/** A store whose commit fails as the test says (else the FileStore's). */
function flaky(inner: Store, fail: (ops: StoreOp[], n: number) => Error | undefined): Store & { commits: number[] } {
  let n = 0;
  const commits: number[] = [];
  return Object.assign(Object.create(inner) as Store, {
    commits,
    commit(ops: StoreOp[]): Promise<CommitResult> {
      const err = fail(ops, n++);
      if (err !== undefined) return Promise.reject(err);
      commits.push(ops.length);
      return inner.commit(ops);
    },
  });
}

test('import: restore puts keep uid, creationTimestamp and generation; a batch refused as too large is split; a failed import removes what it wrote, in both stores', async () => {
  const objects = Array.from({ length: 25 }, (_, i) => obj('Cluster', `c${i}`, { i }, { uid: `uid-${i}`, creationTimestamp: '2020-01-01T00:00:00.000Z', generation: 7 }));
  const dir = join(root, 'import');
  const store = await FileStore.open(dir, { logger: quiet });
  try {
    const s = flaky(store, (ops) => (ops.length > 4 ? new MeshfedError('too-large', 'etcd: too many operations in txn') : undefined));
    await importObjects(s, objects, 'the test store', { batchOps: 10 });
    assert.ok(s.commits.every((n) => n <= 4));
    const got = (await store.list()).map((o) => [o.metadata.uid, o.metadata.creationTimestamp, o.metadata.generation]);
    assert.equal(got.length, 25);
    assert.ok(got.every(([uid, ts, gen]) => String(uid).startsWith('uid-') && ts === '2020-01-01T00:00:00.000Z' && gen === 7));
    // A plain put (the API's) still gets new ones.
    const plain = await store.commit([{ type: 'put', object: obj('Cluster', 'new', {}, { uid: 'mine', generation: 9 }) }]);
    assert.notEqual(plain.results[0]!.object!.metadata.uid, 'mine');
    assert.equal(plain.results[0]!.object!.metadata.generation, 1);
  } finally {
    await store.close();
  }

  const dir2 = join(root, 'import-fail');
  const store2 = await FileStore.open(dir2, { logger: quiet });
  try {
    const s = flaky(store2, (ops, n) => (n === 2 && ops[0]!.type === 'put' ? new Error('disk full') : undefined));
    await assert.rejects(importObjects(s, objects, 'the test store', { batchOps: 10 }), /import failed after 20 of 25 objects: disk full \(the objects written before it were removed again\)/);
    assert.equal(await store2.count(), 0);
    // The audit store failing after the main one was copied: the main one is emptied again too.
    const audit = flaky(store2, () => new Error('audit disk full'));
    const mainStore = await FileStore.open(join(root, 'import-main'), { logger: quiet });
    try {
      const stores = { main: { revision: 1, objects }, audit: { revision: 1, objects: objects.slice(0, 1) } };
      await assert.rejects(copyHubStores({ from: 'test', stores }, { main: mainStore, audit }, 'test target'), /audit disk full/);
      assert.equal(await mainStore.count(), 0);
    } finally {
      await mainStore.close();
    }
  } finally {
    await store2.close();
  }
});
