// The audit log over a real FileStore in a temp dir: records are durable and
// read back after a restart, the hash chain verifies and catches tampering at
// the right seq (through the store and in the store's files), retention keeps
// a verifiable chain, concurrent records stay a sequence, queries filter,
// records are bounded, and no secret reaches the store.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ApiObject } from '../../src/api/meta.js';
import { AUDIT_RECORD_KIND, AuditLog, type AuditLogOptions } from '../../src/audit/log.js';
import { auditRecordOf, objectDiff } from '../../src/audit/record.js';
import type { ChainedAuditRecord } from '../../src/audit/chain.js';
import type { AuditRecord, Principal } from '../../src/auth/types.js';
import { auditAnswer, parseAuditQuery, verifyAnswer } from '../../src/hub/api-audit.js';
import { VIEW_KINDS, findKind } from '../../src/registry.js';
import { FileStore } from '../../src/store/file-store.js';
import { lineDiff } from '../../src/util/diff.js';
import { MeshfedError } from '../../src/util/errors.js';

const quiet = { warn: () => undefined, error: () => undefined };

async function withStore(fn: (dir: string, open: () => Promise<FileStore>) => Promise<void>): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'meshfed-audit-'));
  const dir = join(root, 'data');
  try {
    await fn(dir, () => FileStore.open(dir, { logger: quiet }));
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

function rec(i: number, extra: Partial<AuditRecord> = {}): AuditRecord {
  return {
    time: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(),
    who: 'user:alice',
    from: '127.0.0.1:5000',
    request: 'POST /api/v1alpha1/apply',
    verb: 'update',
    kind: 'TrafficPolicy',
    object: `default/tp-${i}`,
    outcome: 'allowed',
    ...extra,
  };
}

function openLog(store: FileStore, opts: AuditLogOptions = {}): Promise<AuditLog> {
  return AuditLog.open(store, { sweepEveryMs: 0, now: () => Date.UTC(2026, 0, 2), ...opts });
}

/** Rewrites the store's log as someone with the files would: the line checksums recomputed, so the store itself sees nothing wrong. */
async function editWal(dir: string, edit: (payload: { rev: number; ops: { put?: ApiObject }[] }) => boolean): Promise<number> {
  const path = join(dir, 'wal.jsonl');
  const lines = (await readFile(path, 'utf8')).split('\n');
  let edited = 0;
  const out = lines.map((line) => {
    if (line === '') return line;
    const payload = JSON.parse(line.slice(line.indexOf(' ') + 1)) as { rev: number; ops: { put?: ApiObject }[] };
    if (!edit(payload)) return line;
    edited++;
    const text = JSON.stringify(payload);
    return `${createHash('sha256').update(text).digest('hex').slice(0, 16)} ${text}`;
  });
  await writeFile(path, out.join('\n'));
  return edited;
}

test('the audit kinds are internal: not served by the API, never sent to agents', () => {
  assert.equal(findKind('AuditRecord'), undefined);
  assert.equal(findKind('AuditAnchor'), undefined);
  assert.equal(VIEW_KINDS.has(AUDIT_RECORD_KIND), false);
});

test('records are durable when record() resolves and read back after a restart; the chain goes on', async () => {
  await withStore(async (dir, open) => {
    let store = await open();
    let log = await openLog(store);
    for (let i = 1; i <= 3; i++) await log.record(rec(i));
    // Durable before close: the store's log on disk already holds the third record.
    const wal = await readFile(join(dir, 'wal.jsonl'), 'utf8');
    const third = log.query({ limit: 1 }).items[0]!;
    assert.equal(third.seq, 3);
    assert.ok(wal.includes(third.hash), 'the record is in the write-ahead log');
    await log.close();
    await store.close();

    store = await open();
    log = await openLog(store);
    const items = log.query().items;
    assert.deepEqual(
      items.map((r) => [r.seq, r.object]),
      [
        [3, 'default/tp-3'],
        [2, 'default/tp-2'],
        [1, 'default/tp-1'],
      ],
    );
    await log.record(rec(4));
    assert.equal(log.query({ limit: 1 }).items[0]!.prevHash, third.hash);
    const v = await log.verify();
    assert.equal(v.ok, true, JSON.stringify(v));
    assert.equal(v.records, 4);
    await assert.rejects(
      log.close().then(() => log.record(rec(5))),
      (e: unknown) => e instanceof MeshfedError && e.code === 'unavailable',
    );
    await store.close();
  });
});

test('two logs on one store (hub replicas) appending at once keep one chain: every record kept, in one line that verifies', async () => {
  await withStore(async (_dir, open) => {
    const store = await open();
    const a = await openLog(store);
    const b = await openLog(store);
    // Both start at the same head: every other append finds its seq taken and chains after what it missed.
    await Promise.all(Array.from({ length: 20 }, (_x, i) => (i % 2 === 0 ? a : b).record(rec(i + 1))));
    const v = await a.verify();
    assert.equal(v.ok, true, JSON.stringify(v));
    assert.equal(v.records, 20);
    const objects = new Set(a.query({ limit: 100 }).items.map((r) => r.object));
    assert.equal(objects.size, 20);
    await a.close();
    await b.close();
    await store.close();
  });
});

test('a record changed through the store is found at its seq; so is a removed one', async () => {
  await withStore(async (_dir, open) => {
    const store = await open();
    const log = await openLog(store);
    for (let i = 1; i <= 6; i++) await log.record(rec(i, i === 4 ? { outcome: 'denied', reason: 'no RoleBinding allows update' } : {}));
    assert.equal((await log.verify()).ok, true);

    const name = 'r' + '4'.padStart(16, '0');
    const stored = (await store.get({ kind: AUDIT_RECORD_KIND, name }))!;
    const spec = stored.spec as ChainedAuditRecord;
    await store.commit([{ type: 'put', object: { ...stored, spec: { ...spec, outcome: 'allowed', reason: undefined } } }]);
    let v = await verifyAnswer(log);
    assert.equal(v.ok, false);
    assert.equal(v.broken?.seq, 4);
    assert.match(v.broken!.problem, /changed after it was written/);

    // Put it back, then remove record 2 instead.
    await store.commit([{ type: 'put', object: stored }]);
    assert.equal((await log.verify()).ok, true);
    const ref = (seq: number) => ({ kind: AUDIT_RECORD_KIND, name: 'r' + String(seq).padStart(16, '0') });
    const second = (await store.get(ref(2)))!;
    await store.commit([{ type: 'delete', ref: ref(2) }]);
    v = await log.verify();
    assert.equal(v.broken?.seq, 2);
    assert.match(v.broken!.problem, /missing/);

    // The newest record removed: this hub knows it wrote up to 6.
    await store.commit([{ type: 'put', object: second }]);
    // Put back, record 2 is listed last by the store: queries still answer by seq.
    assert.deepEqual(
      log.query().items.map((r) => r.seq),
      [6, 5, 4, 3, 2, 1],
    );
    assert.deepEqual(
      log.query({ limit: 5 }).items.map((r) => r.seq),
      [6, 5, 4, 3, 2],
    );
    await store.commit([{ type: 'delete', ref: ref(6) }]);
    v = await log.verify();
    assert.equal(v.broken?.seq, 6);
    assert.match(v.broken!.problem, /missing/);
    await log.close();
    await store.close();
  });
});

test("a record edited in the store's files (checksums recomputed) is found at its seq after a restart", async () => {
  await withStore(async (dir, open) => {
    let store = await open();
    let log = await openLog(store);
    for (let i = 1; i <= 5; i++) await log.record(rec(i, { who: i === 3 ? 'user:mallory' : 'user:alice' }));
    await log.close();
    await store.close();

    const edited = await editWal(dir, (p) => {
      const put = p.ops.find((o) => o.put?.kind === AUDIT_RECORD_KIND && (o.put.spec as ChainedAuditRecord).seq === 3)?.put;
      if (put === undefined) return false;
      (put.spec as ChainedAuditRecord).who = 'user:alice';
      return true;
    });
    assert.equal(edited, 1);

    store = await open();
    log = await openLog(store);
    assert.equal(log.query({ who: 'mallory' }).items.length, 0, 'the edit took: the store serves it');
    const v = await log.verify();
    assert.equal(v.ok, false);
    assert.equal(v.broken?.seq, 3);
    await log.close();
    await store.close();
  });
});

test('retention by count drops the oldest and keeps an anchor: the rest verifies, after a restart too', async () => {
  await withStore(async (_dir, open) => {
    let store = await open();
    let log = await openLog(store, { maxRecords: 5 });
    for (let i = 1; i <= 12; i++) await log.record(rec(i));
    assert.deepEqual(
      log.query().items.map((r) => r.seq),
      [12, 11, 10, 9, 8],
    );
    assert.equal(await store.count({ kind: AUDIT_RECORD_KIND }), 5);
    let v = await log.verify();
    assert.equal(v.ok, true, JSON.stringify(v));
    assert.deepEqual([v.anchor.seq, v.first, v.last], [7, 8, 12]);
    await log.close();
    await store.close();

    store = await open();
    log = await openLog(store, { maxRecords: 5 });
    v = await log.verify();
    assert.equal(v.ok, true, JSON.stringify(v));
    assert.equal(v.anchor.seq, 7);
    // Tampering with the anchor is caught at the first retained record.
    const anchor = (await store.get({ kind: 'AuditAnchor', name: 'chain' }))!;
    await store.commit([{ type: 'put', object: { ...anchor, spec: { seq: 7, hash: 'f'.repeat(64) } } }]);
    await log.close();
    log = await openLog(store, { maxRecords: 5 });
    v = await log.verify();
    assert.equal(v.broken?.seq, 8);
    await log.close();
    await store.close();
  });
});

test('retention by age (sweep) and by bytes', async () => {
  await withStore(async (_dir, open) => {
    const store = await open();
    let now = Date.UTC(2026, 0, 1, 0, 1);
    const log = await openLog(store, { maxAgeMs: 86_400_000, now: () => now });
    for (let i = 1; i <= 4; i++) await log.record(rec(i));
    now += 86_400_000 + 30_000; // records 1..30 s old at day start: the first ones are past a day
    await log.record(rec(100, { time: new Date(now).toISOString() }));
    assert.equal(log.stats().records, 1, 'the record past its age went in the same commit');
    now += 2 * 86_400_000;
    assert.equal(await log.sweep(), 1);
    assert.equal(log.stats().records, 0);
    const v = await log.verify();
    assert.equal(v.ok, true);
    assert.equal(v.anchor.seq, 5);
    await log.close();

    const small = await openLog(store, { maxBytes: 4096, maxRecordBytes: 1024, maxAgeMs: 365 * 86_400_000, now: () => now });
    for (let i = 0; i < 40; i++) await small.record(rec(i, { time: new Date(now).toISOString() }));
    assert.ok(small.stats().bytes <= 4096, `bytes ${small.stats().bytes}`);
    assert.ok(small.stats().records > 5 && small.stats().records < 40);
    assert.equal((await small.verify()).ok, true);
    await small.close();
    await store.close();
  });
});

test('concurrent records keep one valid chain, in call order', async () => {
  await withStore(async (_dir, open) => {
    const store = await open();
    const log = await openLog(store);
    await Promise.all(Array.from({ length: 200 }, (_x, i) => log.record(rec(i, { object: `default/c-${i}` }))));
    const items = log.query({ limit: 1000 }).items.reverse();
    assert.deepEqual(
      items.map((r) => r.seq),
      Array.from({ length: 200 }, (_x, i) => i + 1),
    );
    assert.deepEqual(
      items.map((r) => r.object),
      Array.from({ length: 200 }, (_x, i) => `default/c-${i}`),
    );
    assert.equal((await log.verify()).ok, true);
    await log.close();
    await store.close();
  });
});

test('queries filter by time, who, kind, namespace and outcome, newest first, bounded', async () => {
  await withStore(async (_dir, open) => {
    const store = await open();
    const log = await openLog(store);
    await log.record(rec(1));
    await log.record(rec(2, { who: 'user:bob', kind: 'Cluster', object: 'east', verb: 'delete' }));
    await log.record(rec(3, { who: 'anonymous', outcome: 'denied', reason: 'no credential', object: 'prod/tp', kind: 'TrafficPolicy' }));
    await log.record(rec(4, { who: 'agent:east', kind: 'Workload', object: 'prod/w1', outcome: 'failed', reason: 'invalid' }));
    const now = Date.UTC(2026, 0, 1, 0, 0, 10);
    const seqs = (qs: string): number[] => auditAnswer(log, new URLSearchParams(qs), now).items.map((r) => r.seq);
    assert.deepEqual(seqs(''), [4, 3, 2, 1]);
    assert.deepEqual(seqs('who=bob'), [2]);
    assert.deepEqual(seqs('who=user:alice'), [1]);
    assert.deepEqual(seqs('who=anonymous'), [3]);
    assert.deepEqual(seqs('kind=trafficpolicy'), [3, 1]);
    assert.deepEqual(seqs('namespace=prod'), [4, 3]);
    assert.deepEqual(seqs('outcome=denied'), [3]);
    assert.deepEqual(seqs('since=2026-01-01T00:00:02Z&until=2026-01-01T00:00:03Z'), [3, 2]);
    assert.deepEqual(seqs('since=8s'), [4, 3, 2]); // now is 00:00:10
    assert.deepEqual(seqs('since=99999999999d'), [4, 3, 2, 1]);
    const page = auditAnswer(log, new URLSearchParams('limit=2'), now);
    assert.deepEqual(
      page.items.map((r) => r.seq),
      [4, 3],
    );
    assert.equal(page.more, true);
    assert.equal(page.log.records, 4);
    for (const bad of ['limit=0', 'limit=1001', 'limit=abc', 'outcome=maybe', 'since=yesterday', 'since=1', 'verb=x', 'who=a&who=b', 'since=2026-01-02&until=2026-01-01']) {
      assert.throws(
        () => parseAuditQuery(new URLSearchParams(bad), now),
        (e: unknown) => e instanceof MeshfedError && e.code === 'invalid',
        bad,
      );
    }
    await log.close();
    await store.close();
  });
});

test('a large diff is capped with a marker; the record stays bounded and verifies', async () => {
  await withStore(async (_dir, open) => {
    const store = await open();
    const log = await openLog(store, { maxRecordBytes: 8192 });
    const before: ApiObject = { apiVersion: 'meshfed.io/v1alpha1', kind: 'Service', metadata: { name: 's', namespace: 'default' }, spec: { ports: [] } };
    const after: ApiObject = { ...before, spec: { ports: Array.from({ length: 5000 }, (_x, i) => ({ name: `p${i}`, port: i })) } };
    const r = auditRecordOf({
      from: '127.0.0.1:1',
      method: 'POST',
      url: '/api/v1alpha1/apply',
      permission: { verb: 'update', kind: 'Service', namespace: 'default', name: 's' },
      outcome: 'allowed',
      before,
      after,
    });
    assert.ok(r.diff!.length > 5000);
    await log.record({ ...r, reason: 'x'.repeat(100_000) });
    const stored = log.query().items[0]!;
    assert.ok(Buffer.byteLength(JSON.stringify(stored)) <= 8192, `${Buffer.byteLength(JSON.stringify(stored))} bytes`);
    assert.match(stored.diff!.at(-1)!, /^… diff truncated: \d+ of \d+ lines left out$/);
    assert.ok(stored.reason!.length < 1200);
    assert.equal((await log.verify()).ok, true);
    await log.close();
    await store.close();
  });
});

test('no secret reaches the store from a join-token request (body, answer, URL, reason) or a key in an object', async () => {
  await withStore(async (dir, open) => {
    const store = await open();
    const log = await openLog(store);
    const secret = 'S3cr3tS3cr3tS3cr3tS3cr3tS3cr3tS3cr3tS3cr3tA'.slice(0, 43);
    const token = `mfj1.0123456789abcdef.${secret}.${'a'.repeat(64)}`;
    const bearer = 'mft_' + 'Z'.repeat(40);
    const principal: Principal = { kind: 'user', name: 'admin', groups: [], via: 'token', credentialId: 'tok-1' };
    const keyPem = '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\nVJTUt9Us8cKj\n-----END PRIVATE KEY-----\n';
    await log.record(
      auditRecordOf({
        principal,
        from: '10.0.0.9:4000',
        method: 'POST',
        url: `/api/v1alpha1/clusters/east/join-token?token=${bearer}`,
        permission: { verb: 'mint-join-token', kind: 'Cluster', name: 'east' },
        outcome: 'allowed',
        reason: `issued ${token} (Authorization: Bearer ${bearer})`,
        body: { ttl: '1h', spec: { region: 'r', zones: ['a'] }, token, tokenId: '0123456789abcdef', answer: { secret, privateKey: keyPem } },
      }),
    );
    const withKey: ApiObject = { apiVersion: 'meshfed.io/v1alpha1', kind: 'Cluster', metadata: { name: 'east', annotations: { note: keyPem, 'bootstrap-token': token } }, spec: { region: 'r' } };
    await log.record(
      auditRecordOf({
        principal,
        from: '10.0.0.9:4000',
        method: 'POST',
        url: '/api/v1alpha1/apply',
        permission: { verb: 'create', kind: 'Cluster', name: 'east' },
        outcome: 'allowed',
        after: withKey,
      }),
    );
    // A record built by hand, with a secret in its diff lines, is scrubbed too.
    await log.record(rec(9, { diff: ['+ password: hunter2hunter2', `+ join: ${token}`, '+ key: |', '+   -----BEGIN EC PRIVATE KEY-----', '+   MHcCAQEEIOabc', '+   -----END EC PRIVATE KEY-----'] }));
    await log.close();
    await store.close();

    let onDisk = '';
    for (const f of await readdir(dir)) if (f.endsWith('.json') || f.endsWith('.jsonl')) onDisk += await readFile(join(dir, f), 'utf8');
    assert.ok(onDisk.includes('mint-join-token') && onDisk.includes('tok-1') && onDisk.includes('0123456789abcdef'), 'the record itself is there, with the ids');
    for (const s of [secret, bearer, 'MIIEvQIBADAN', 'VJTUt9Us8cKj', 'hunter2', 'MHcCAQEEIOabc']) assert.equal(onDisk.includes(s), false, `${s} is in the store`);
  });
});

test('lineDiff: minimal for small inputs, bounded for large ones', () => {
  assert.deepEqual(lineDiff(['a', 'b', 'c'], ['a', 'x', 'c']), ['  a', '+ x', '- b', '  c']);
  assert.deepEqual(objectDiff(undefined, { apiVersion: 'meshfed.io/v1alpha1', kind: 'Mesh', metadata: { name: 'm', resourceVersion: '9' }, spec: {} }).slice(0, 2), [
    '+ apiVersion: meshfed.io/v1alpha1',
    '+ kind: Mesh',
  ]);
  const a = Array.from({ length: 20_000 }, (_x, i) => `a${i}`);
  const b = Array.from({ length: 20_000 }, (_x, i) => `b${i}`);
  const t0 = performance.now();
  const d = lineDiff(['same', ...a, 'end'], ['same', ...b, 'end']);
  assert.ok(performance.now() - t0 < 1000, 'no quadratic table over 20k x 20k lines');
  assert.equal(d.length, 40_002);
});
