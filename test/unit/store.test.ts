import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { appendFile, mkdtemp, readFile, readdir, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileStore, type FileStoreOptions, type StoreLogger } from '../../src/store/file-store.js';
import { isRevisionCompacted, RevisionCompactedError, type WatchEvent } from '../../src/store/store.js';
import { MeshfedError } from '../../src/util/errors.js';
import { clusterOf, type ApiObject } from '../../src/api/meta.js';

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'meshfed-store-'));
  try {
    await fn(join(dir, 'data'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function captureLogger(): StoreLogger & { lines: string[] } {
  const lines: string[] = [];
  return { lines, warn: (m) => lines.push(`warn ${m}`), error: (m, e) => lines.push(`error ${m} ${e instanceof Error ? e.message : ''}`) };
}

function open(dir: string, opts: FileStoreOptions = {}): Promise<FileStore> {
  return FileStore.open(dir, { logger: captureLogger(), ...opts });
}

function cluster(name: string, region = 'r', extra: Partial<ApiObject> = {}): ApiObject {
  return {
    apiVersion: 'meshfed.io/v1alpha1',
    kind: 'Cluster',
    metadata: { name },
    spec: { region, zones: ['z'], network: 'default' },
    ...extra,
  };
}

function service(name: string, clusterName: string, namespace: string): ApiObject {
  return {
    apiVersion: 'meshfed.io/v1alpha1',
    kind: 'Service',
    metadata: { name, namespace },
    spec: { cluster: clusterName, ports: [{ port: 80 }] },
  };
}

const ref = (name: string) => ({ kind: 'Cluster', name });

async function walLines(dir: string): Promise<string[]> {
  const text = await readFile(join(dir, 'wal.jsonl'), 'utf8');
  return text.split('\n').filter((l) => l !== '');
}

function privateWal(store: FileStore): FileHandle {
  return (store as unknown as { wal: FileHandle }).wal;
}

test('outcomes and store-managed metadata', async () => {
  await withDir(async (dir) => {
    const s = await open(dir);
    try {
      assert.equal(s.revision(), 0);
      const c1 = cluster('c1');
      const r1 = await s.commit([{ type: 'put', object: c1 }]);
      assert.equal(r1.revision, 1);
      assert.equal(r1.results[0]!.outcome, 'created');
      const created = r1.results[0]!.object!;
      assert.match(created.metadata.uid!, /^[0-9a-f-]{36}$/);
      assert.ok(!Number.isNaN(Date.parse(created.metadata.creationTimestamp!)));
      assert.equal(created.metadata.generation, 1);
      assert.equal(created.metadata.resourceVersion, '1');
      assert.equal(c1.metadata.uid, undefined, 'caller object is not modified');

      // Same content, different key order, bogus store fields: unchanged, nothing written.
      const walBefore = await readFile(join(dir, 'wal.jsonl'), 'utf8');
      const again: ApiObject = {
        apiVersion: 'meshfed.io/v1alpha1',
        kind: 'Cluster',
        metadata: { name: 'c1', uid: 'bogus', resourceVersion: '99', generation: 7 },
        spec: { network: 'default', zones: ['z'], region: 'r' },
      };
      const r2 = await s.commit([{ type: 'put', object: again }]);
      assert.equal(r2.revision, 1);
      assert.equal(r2.results[0]!.outcome, 'unchanged');
      assert.deepEqual(r2.results[0]!.object, created);
      assert.equal(await readFile(join(dir, 'wal.jsonl'), 'utf8'), walBefore);

      // Label change: configured, generation kept; supplied uid/creationTimestamp ignored.
      const labelled = cluster('c1');
      labelled.metadata.labels = { tier: 'gold' };
      labelled.metadata.uid = 'bogus';
      labelled.metadata.creationTimestamp = '1999-01-01T00:00:00Z';
      const r3 = await s.commit([{ type: 'put', object: labelled }]);
      assert.equal(r3.revision, 2);
      const configured = r3.results[0]!.object!;
      assert.equal(r3.results[0]!.outcome, 'configured');
      assert.equal(configured.metadata.uid, created.metadata.uid);
      assert.equal(configured.metadata.creationTimestamp, created.metadata.creationTimestamp);
      assert.equal(configured.metadata.generation, 1);
      assert.equal(configured.metadata.resourceVersion, '2');

      // Spec change bumps generation; status change does not.
      const moved = cluster('c1', 'r2');
      moved.metadata.labels = { tier: 'gold' };
      const r4 = await s.commit([{ type: 'put', object: moved }]);
      assert.equal(r4.results[0]!.outcome, 'configured');
      assert.equal(r4.results[0]!.object!.metadata.generation, 2);
      const withStatus = { ...moved, status: { services: 3 } };
      const r5 = await s.commit([{ type: 'put', object: withStatus }]);
      assert.equal(r5.results[0]!.outcome, 'configured');
      assert.equal(r5.results[0]!.object!.metadata.generation, 2);
      assert.equal(r5.revision, 4);

      // Copies in and out: mutating either side does not reach the store.
      withStatus.spec = { region: 'mutated' };
      r5.results[0]!.object!.metadata.labels!.tier = 'mutated';
      const got = await s.get(ref('c1'));
      assert.deepEqual(got?.spec, { region: 'r2', zones: ['z'], network: 'default' });
      assert.deepEqual(got?.metadata.labels, { tier: 'gold' });
      got!.spec = 'mutated';
      assert.equal(((await s.get(ref('c1')))!.spec as { region: string }).region, 'r2');

      const r6 = await s.commit([{ type: 'delete', ref: ref('c1') }]);
      assert.deepEqual(r6, { revision: 5, results: [{ outcome: 'deleted' }] });
      assert.equal(await s.get(ref('c1')), undefined);
      const r7 = await s.commit([{ type: 'delete', ref: ref('c1') }]);
      assert.deepEqual(r7, { revision: 5, results: [{ outcome: 'not-found' }] });
      assert.equal(s.revision(), 5);

      // Re-creating after delete gets a new identity.
      const r8 = await s.commit([{ type: 'put', object: cluster('c1') }]);
      assert.equal(r8.results[0]!.outcome, 'created');
      assert.notEqual(r8.results[0]!.object!.metadata.uid, created.metadata.uid);
    } finally {
      await s.close();
    }
  });
});

test('a multi-op commit is one revision, sees its own earlier ops, and is all-or-nothing', async () => {
  await withDir(async (dir) => {
    const s = await open(dir);
    try {
      await s.commit([{ type: 'put', object: cluster('old') }]);
      const r = await s.commit([
        { type: 'put', object: cluster('a') },
        { type: 'put', object: cluster('b') },
        { type: 'delete', ref: ref('old') },
        { type: 'delete', ref: ref('missing') },
        { type: 'put', object: cluster('tmp') },
        { type: 'delete', ref: ref('tmp') },
        { type: 'put', object: cluster('a', 'r9') },
      ]);
      assert.equal(r.revision, 2);
      assert.deepEqual(
        r.results.map((x) => x.outcome),
        ['created', 'created', 'deleted', 'not-found', 'created', 'deleted', 'configured'],
      );
      assert.equal(r.results[6]!.object!.metadata.generation, 2);
      assert.equal(r.results[6]!.object!.metadata.uid, r.results[0]!.object!.metadata.uid);
      const names = (await s.list()).map((o) => [o.metadata.name, o.metadata.resourceVersion]);
      assert.deepEqual(names, [
        ['a', '2'],
        ['b', '2'],
      ]);
      assert.equal((await walLines(dir)).length, 2, 'one log line per commit');

      // An invalid op rejects the whole commit, including the valid ops before it.
      await assert.rejects(
        s.commit([
          { type: 'put', object: cluster('c') },
          { type: 'put', object: { kind: 'Cluster', metadata: {} } as unknown as ApiObject },
        ]),
        TypeError,
      );
      assert.equal(s.revision(), 2);
      assert.equal(await s.get(ref('c')), undefined);
    } finally {
      await s.close();
    }
    // Re-open: the in-commit put/delete sequence replays to the same state.
    const s2 = await open(dir);
    try {
      assert.deepEqual(
        (await s2.list()).map((o) => [o.metadata.name, (o.spec as { region: string }).region]),
        [
          ['a', 'r9'],
          ['b', 'r'],
        ],
      );
    } finally {
      await s2.close();
    }
  });
});

test('restart keeps every object, its metadata and the revision', async () => {
  await withDir(async (dir) => {
    const s = await open(dir);
    for (let i = 0; i < 20; i++) await s.commit([{ type: 'put', object: cluster(`c${i}`) }]);
    await s.commit([{ type: 'put', object: cluster('c3', 'moved', { status: { services: 1 } }) }]);
    await s.commit([{ type: 'delete', ref: ref('c7') }]);
    const before = await s.list();
    assert.equal(s.revision(), 22);
    await s.close();
    assert.equal((await stat(dir)).mode & 0o777, 0o700);

    const s2 = await open(dir);
    try {
      assert.equal(s2.revision(), 22);
      assert.deepEqual(await s2.list(), before);
      assert.equal(before.length, 19);
      const r = await s2.commit([{ type: 'put', object: cluster('new') }]);
      assert.equal(r.revision, 23);
      // Identity survives: an identical put after restart is unchanged.
      const same = await s2.commit([{ type: 'put', object: cluster('c3', 'moved', { status: { services: 1 } }) }]);
      assert.equal(same.results[0]!.outcome, 'unchanged');
      assert.equal(same.results[0]!.object!.metadata.generation, 2);
    } finally {
      await s2.close();
    }
  });
});

test('a torn last log line is discarded and earlier commits survive', async () => {
  await withDir(async (dir) => {
    const s = await open(dir);
    await s.commit([{ type: 'put', object: cluster('c1') }]);
    await s.commit([{ type: 'put', object: cluster('c2') }]);
    await s.close();
    const good = await readFile(join(dir, 'wal.jsonl'));
    const lastLine = (await walLines(dir))[1]!;
    // Crash mid-append of a third commit: half a line, no newline.
    await appendFile(join(dir, 'wal.jsonl'), lastLine.replace('"c2"', '"c3"').slice(0, 60));

    const logger = captureLogger();
    const s2 = await FileStore.open(dir, { logger });
    try {
      assert.equal(s2.revision(), 2);
      assert.deepEqual(
        (await s2.list()).map((o) => o.metadata.name),
        ['c1', 'c2'],
      );
      assert.ok(
        logger.lines.some((l) => l.startsWith('warn') && l.includes('discarded')),
        logger.lines.join('\n'),
      );
      assert.deepEqual(await readFile(join(dir, 'wal.jsonl')), good, 'torn tail is cut off');
      assert.equal((await s2.commit([{ type: 'put', object: cluster('c3') }])).revision, 3);
    } finally {
      await s2.close();
    }
    const s3 = await open(dir);
    try {
      assert.equal(s3.revision(), 3);
      assert.deepEqual(
        (await s3.list()).map((o) => o.metadata.name),
        ['c1', 'c2', 'c3'],
      );
    } finally {
      await s3.close();
    }
  });
});

test('a complete line with a bad checksum refuses to start, the last line included: it is corruption, not a torn write', async () => {
  await withDir(async (dir) => {
    const s = await open(dir);
    for (const n of ['c1', 'c2', 'c3']) await s.commit([{ type: 'put', object: cluster(n) }]);
    await s.close();
    const lines = await walLines(dir);
    const flip = (l: string) => l.replace('"region":"r"', '"region":"x"');

    // The last line is whole (newline-terminated): it may have been acknowledged, so it is not dropped.
    await writeFile(join(dir, 'wal.jsonl'), [lines[0], lines[1], flip(lines[2]!)].join('\n') + '\n');
    await assert.rejects(open(dir), (err: Error) => err.message.includes('wal.jsonl') && err.message.includes('corrupt'));

    await writeFile(join(dir, 'wal.jsonl'), [flip(lines[0]!), lines[1], lines[2]].join('\n') + '\n');
    await assert.rejects(open(dir), (err: Error) => err.message.includes('wal.jsonl') && err.message.includes('corrupt'));
    // The failed open released the lock.
    await assert.rejects(open(dir), /corrupt/);
  });
});

test('concurrent commits share fsyncs, keep call order, and a torn group is dropped whole', async () => {
  await withDir(async (dir) => {
    const s = await open(dir);
    const wal = privateWal(s);
    let syncs = 0;
    const realSync = wal.datasync.bind(wal);
    wal.datasync = () => {
      syncs++;
      return realSync();
    };
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => s.commit([{ type: 'put', object: cluster(`c${i}`) }])));
    assert.deepEqual(
      results.map((r) => r.revision),
      Array.from({ length: 50 }, (_, i) => i + 1),
    );
    assert.ok(syncs < 50 && syncs >= 1, `expected group commit, got ${syncs} fsyncs for 50 commits`);
    await s.close();

    // Lines 2..50 were one group write: only its last line lacks "more".
    const lines = await walLines(dir);
    assert.equal(lines.length, 50);
    assert.ok(!lines[0]!.includes('"more"'));
    assert.ok(lines[1]!.includes('"more":true'));
    assert.ok(!lines[49]!.includes('"more"'));
    // Crash during that group write: its final line never made it.
    await writeFile(join(dir, 'wal.jsonl'), lines.slice(0, 49).join('\n') + '\n');
    const s2 = await open(dir);
    try {
      assert.equal(s2.revision(), 1);
      assert.deepEqual(
        (await s2.list()).map((o) => o.metadata.name),
        ['c0'],
      );
    } finally {
      await s2.close();
    }
  });
});

test('compaction writes a snapshot, cuts the log, and restart keeps everything', async () => {
  await withDir(async (dir) => {
    const s = await open(dir, { compactEvery: 3 });
    for (let i = 0; i < 10; i++) await s.commit([{ type: 'put', object: cluster(`c${i}`) }]);
    await s.commit([{ type: 'delete', ref: ref('c0') }]);
    await s.commit([{ type: 'put', object: cluster('c5', 'moved') }]);
    const before = await s.list();
    await s.close();

    const snap = JSON.parse(await readFile(join(dir, 'snapshot.json'), 'utf8')) as { rev: number; objects: ApiObject[] };
    // Which revision the last snapshot caught depends on timing (one compaction at a time);
    // what must hold is that the snapshot plus the remaining log is exactly revisions 1..12.
    assert.ok(snap.rev >= 3, `snapshot rev ${snap.rev}`);
    const logRevs = (await walLines(dir)).map((l) => (JSON.parse(l.slice(17)) as { rev: number }).rev);
    assert.deepEqual(
      logRevs,
      Array.from({ length: 12 - snap.rev }, (_, i) => snap.rev + 1 + i),
    );
    assert.ok(!(await readdir(dir)).includes('wal.old.jsonl'));

    const s2 = await open(dir, { compactEvery: 3 });
    try {
      assert.equal(s2.revision(), 12);
      assert.deepEqual(await s2.list(), before);
      assert.equal(before.length, 9);
    } finally {
      await s2.close();
    }
  });
});

test('compaction follows the growth of the log: a large store is not rewritten for a few small commits', async () => {
  await withDir(async (dir) => {
    const s = await open(dir, { compactMinLogBytes: 10_000 });
    const snapRev = async () => (JSON.parse(await readFile(join(dir, 'snapshot.json'), 'utf8')) as { rev: number }).rev;
    const idle = () => (s as unknown as { compacting?: Promise<void> }).compacting;
    // One large commit (~100 KB of log): past the minimum, so the store compacts.
    await s.commit(Array.from({ length: 400 }, (_, i) => ({ type: 'put' as const, object: cluster(`big-${i}`, 'r'.repeat(200)) })));
    await s.commit([{ type: 'put', object: cluster('trigger') }]);
    await idle();
    const first = await snapRev();
    assert.ok(first >= 1);
    // 100 small commits (~25 KB of log) do not rewrite ~100 KB of objects...
    for (let i = 0; i < 100; i++) await s.commit([{ type: 'put', object: cluster(`small-${i}`) }]);
    await idle();
    assert.equal(await snapRev(), first);
    // ...until the log has grown as large as the snapshot.
    for (let i = 0; i < 800; i++) await s.commit([{ type: 'put', object: cluster(`more-${i}`) }]);
    await idle();
    assert.ok((await snapRev()) > first);
    await s.close();
    const s2 = await open(dir);
    try {
      assert.equal((await s2.list()).length, 400 + 1 + 100 + 800);
      assert.equal(await s2.count({ kind: 'Cluster' }), 1301);
    } finally {
      await s2.close();
    }
  });
});

test('crash after the snapshot but before the old log segment was removed replays correctly', async () => {
  await withDir(async (dir) => {
    const s = await open(dir, { compactEvery: 3 });
    await s.commit([{ type: 'put', object: cluster('a') }]);
    await s.commit([{ type: 'put', object: cluster('b') }]);
    const oldSegment = await readFile(join(dir, 'wal.jsonl'));
    await s.commit([{ type: 'delete', ref: ref('a') }]); // third commit: compaction at rev 3
    await s.commit([{ type: 'put', object: cluster('c') }]);
    await s.close();
    assert.equal(JSON.parse(await readFile(join(dir, 'snapshot.json'), 'utf8')).rev, 3);
    // Simulate the crash window: the pre-snapshot segment (revs 1-2, and here missing rev 3) is still on disk.
    await writeFile(join(dir, 'wal.old.jsonl'), oldSegment);
    await writeFile(join(dir, 'snapshot.json.tmp'), '{"rev":');

    const s2 = await open(dir, { compactEvery: 3 });
    try {
      assert.equal(s2.revision(), 4);
      assert.deepEqual(
        (await s2.list()).map((o) => o.metadata.name),
        ['b', 'c'],
      );
      assert.ok(!(await readdir(dir)).includes('snapshot.json.tmp'));
      // The next compaction cleans up the leftover segment.
      for (let i = 0; i < 3; i++) await s2.commit([{ type: 'put', object: cluster(`x${i}`) }]);
    } finally {
      await s2.close();
    }
    assert.ok(!(await readdir(dir)).includes('wal.old.jsonl'));
    const s3 = await open(dir);
    try {
      assert.equal(s3.revision(), 7);
      assert.deepEqual(
        (await s3.list()).map((o) => o.metadata.name),
        ['b', 'c', 'x0', 'x1', 'x2'],
      );
    } finally {
      await s3.close();
    }
  });
});

test('watch replays retained history in order, then streams live events after the commit', async () => {
  await withDir(async (dir) => {
    const logger = captureLogger();
    const s = await FileStore.open(dir, { logger });
    try {
      await s.commit([{ type: 'put', object: cluster('a') }]);
      await s.commit([{ type: 'put', object: cluster('b') }]);
      await s.commit([{ type: 'put', object: cluster('a', 'r2') }]);

      const seen: WatchEvent[] = [];
      const stop = s.watch(1, (e) => seen.push(e));
      const thrower = s.watch(1, () => {
        throw new Error('listener bug');
      });
      const all: string[] = [];
      const stopAll = s.watch(0, (e) => all.push(`${e.revision}:${e.type}:${e.object.metadata.name}`));
      await new Promise((r) => setImmediate(r));
      assert.deepEqual(
        seen.map((e) => [e.revision, e.type, e.object.metadata.name]),
        [
          [2, 'ADDED', 'b'],
          [3, 'MODIFIED', 'a'],
        ],
      );

      const r = await s.commit([
        { type: 'delete', ref: ref('b') },
        { type: 'put', object: cluster('c') },
      ]);
      assert.equal(r.revision, 4);
      assert.equal(seen.length, 4, 'live events are delivered by the time the commit resolves');
      assert.deepEqual(
        seen.slice(2).map((e) => [e.revision, e.type, e.object.metadata.name, e.object.metadata.resourceVersion]),
        [
          [4, 'DELETED', 'b', '4'],
          [4, 'ADDED', 'c', '4'],
        ],
      );
      assert.ok(
        logger.lines.some((l) => l.includes('listener bug')),
        'listener error is reported',
      );

      // Events are copies: a listener mutating one does not affect others or the store.
      seen[3]!.object.metadata.name = 'mutated';
      assert.ok(all.includes('4:ADDED:c'));
      assert.equal((await s.get(ref('c')))!.metadata.name, 'c');

      // No event for an unchanged put; none after unsubscribe.
      await s.commit([{ type: 'put', object: cluster('c') }]);
      stop();
      thrower();
      await s.commit([{ type: 'put', object: cluster('d') }]);
      assert.equal(seen.length, 4);
      assert.deepEqual(all, ['1:ADDED:a', '2:ADDED:b', '3:MODIFIED:a', '4:DELETED:b', '4:ADDED:c', '5:ADDED:d']);
      stopAll();

      // Watching from a future revision delivers only events after it.
      const future: number[] = [];
      s.watch(6, (e) => future.push(e.revision));
      await s.commit([{ type: 'put', object: cluster('e') }]);
      await s.commit([{ type: 'put', object: cluster('f') }]);
      assert.deepEqual(future, [7]);
    } finally {
      await s.close();
    }
  });
});

test('the compacted-revision error is a MeshfedError: gone (410), reason RevisionCompacted, same message', async () => {
  await withDir(async (dir) => {
    const s = await open(dir, { historyLimit: 1 });
    try {
      for (let i = 0; i < 3; i++) await s.commit([{ type: 'put', object: cluster(`c${i}`) }]);
      let caught: unknown;
      try {
        s.watch(0, () => {});
      } catch (err) {
        caught = err;
      }
      assert.ok(caught instanceof MeshfedError, `expected a MeshfedError, got ${String(caught)}`);
      assert.equal(caught.code, 'gone');
      assert.equal(caught.httpStatus, 410);
      assert.equal(caught.reason, 'RevisionCompacted');
      assert.equal(caught.message, 'revision 0 is compacted; oldest available is 2: list again');
      assert.deepEqual(caught.details, { requested: 0, oldest: 2 });
      assert.ok(isRevisionCompacted(caught));
      assert.ok(!isRevisionCompacted(new MeshfedError('gone', 'x')));
      assert.ok(!isRevisionCompacted(new Error('revision 0 is compacted')));
      // Other watch errors are not it.
      assert.throws(
        () => s.watch(-1, () => {}),
        (err: unknown) => err instanceof RangeError && !isRevisionCompacted(err),
      );
    } finally {
      await s.close();
    }
  });
});

test('watch from a revision no longer retained throws RevisionCompactedError', async () => {
  await withDir(async (dir) => {
    const s = await open(dir, { historyLimit: 2 });
    for (let i = 0; i < 5; i++) await s.commit([{ type: 'put', object: cluster(`c${i}`) }]);
    assert.throws(
      () => s.watch(2, () => {}),
      (err: unknown) => err instanceof RevisionCompactedError && err.requested === 2 && err.oldest === 3,
    );
    const got: number[] = [];
    s.watch(3, (e) => got.push(e.revision));
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(got, [4, 5]);
    await s.close();

    // After a restart history starts empty at the recovered revision.
    const s2 = await open(dir);
    try {
      assert.throws(() => s2.watch(4, () => {}), RevisionCompactedError);
      const live: number[] = [];
      s2.watch(5, (e) => live.push(e.revision));
      await s2.commit([{ type: 'put', object: cluster('n') }]);
      assert.deepEqual(live, [6]);
    } finally {
      await s2.close();
    }
  });
});

test('a failed log write changes nothing in memory and rejects naming the file', async () => {
  await withDir(async (dir) => {
    const s = await open(dir);
    await s.commit([{ type: 'put', object: cluster('a') }]);
    const events: number[] = [];
    s.watch(1, (e) => events.push(e.revision));

    // Transient failure (disk full): the write is rolled back and the store keeps working.
    const wal = privateWal(s);
    const realWrite = wal.write.bind(wal);
    (wal as { write: unknown }).write = async (buf: Buffer, off: number) => {
      (wal as { write: unknown }).write = realWrite;
      // Part of the line reaches the file before the device fills up.
      await realWrite(buf, off, 20);
      throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
    };
    await assert.rejects(s.commit([{ type: 'put', object: cluster('b') }]), (err: Error) => err.message.includes(join(dir, 'wal.jsonl')));
    assert.equal(s.revision(), 1);
    assert.equal(await s.get(ref('b')), undefined);
    assert.deepEqual(events, []);
    assert.equal((await s.commit([{ type: 'put', object: cluster('c') }])).revision, 2);
    assert.deepEqual(events, [2]);

    // Unrecoverable failure: the log handle is gone, so the store refuses further writes.
    await privateWal(s).close();
    await assert.rejects(s.commit([{ type: 'put', object: cluster('d') }]), /wal\.jsonl/);
    await assert.rejects(s.commit([{ type: 'put', object: cluster('e') }]), /reopen the store/);
    assert.equal(s.revision(), 2);
    assert.deepEqual(
      (await s.list()).map((o) => o.metadata.name),
      ['a', 'c'],
    );
    await s.close();

    const s2 = await open(dir);
    try {
      assert.equal(s2.revision(), 2);
      assert.deepEqual(
        (await s2.list()).map((o) => o.metadata.name),
        ['a', 'c'],
      );
    } finally {
      await s2.close();
    }
  });
});

test('the data directory is locked against a second hub', async () => {
  await withDir(async (dir) => {
    const s = await open(dir);
    await assert.rejects(open(dir), (err: Error) => err.message.includes(dir) && err.message.includes(String(process.pid)));
    await s.close();
    assert.ok(!(await readdir(dir)).includes('LOCK'), 'close releases the lock');

    // A lock held by a live process that is not us.
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    try {
      await writeFile(join(dir, 'LOCK'), `${child.pid}\n`);
      await assert.rejects(open(dir), (err: Error) => err.message.includes(dir) && err.message.includes(`process ${child.pid}`));
    } finally {
      child.kill();
    }

    // A stale lock from a dead process is taken over.
    const dead = spawnSync(process.execPath, ['-e', '']).pid;
    await writeFile(join(dir, 'LOCK'), `${dead}\n`);
    const s2 = await open(dir);
    try {
      assert.equal((await readFile(join(dir, 'LOCK'), 'utf8')).trim(), String(process.pid));
    } finally {
      await s2.close();
    }
  });
});

test('list filters by kind, namespace and cluster, sorted by key', async () => {
  await withDir(async (dir) => {
    const s = await open(dir);
    try {
      await s.commit([
        { type: 'put', object: service('web', 'east', 'shop') },
        { type: 'put', object: service('api', 'west', 'shop') },
        { type: 'put', object: service('db', 'east', 'data') },
        { type: 'put', object: cluster('west') },
        { type: 'put', object: cluster('east') },
      ]);
      const names = (objs: ApiObject[]) => objs.map((o) => `${o.kind}/${clusterOf(o) ?? ''}/${o.metadata.name}`);
      assert.deepEqual(names(await s.list()), ['Cluster//east', 'Cluster//west', 'Service/east/db', 'Service/east/web', 'Service/west/api']);
      assert.deepEqual(names(await s.list({ kind: 'Cluster' })), ['Cluster//east', 'Cluster//west']);
      assert.deepEqual(names(await s.list({ kind: 'Service', namespace: 'shop' })), ['Service/east/web', 'Service/west/api']);
      assert.deepEqual(names(await s.list({ cluster: 'east' })), ['Service/east/db', 'Service/east/web']);
      assert.deepEqual(names(await s.list({ kind: 'Service', cluster: 'east', namespace: 'data' })), ['Service/east/db']);
      assert.deepEqual(await s.list({ kind: 'Mesh' }), []);
      assert.equal((await s.get({ kind: 'Service', name: 'db', namespace: 'data', cluster: 'east' }))!.metadata.name, 'db');
      assert.equal(await s.get({ kind: 'Service', name: 'db', namespace: 'data' }), undefined);
    } finally {
      await s.close();
    }
  });
});

test('close waits for in-flight commits and then rejects new ones', async () => {
  await withDir(async (dir) => {
    const s = await open(dir);
    const pending = Array.from({ length: 10 }, (_, i) => s.commit([{ type: 'put', object: cluster(`c${i}`) }]));
    const closed = s.close();
    await assert.rejects(s.commit([{ type: 'put', object: cluster('late') }]), /closed/);
    const results = await Promise.all(pending);
    await closed;
    assert.equal(results[9]!.revision, 10);
    const s2 = await open(dir);
    try {
      assert.equal(s2.revision(), 10);
    } finally {
      await s2.close();
    }
  });
});
