import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { appendFile, mkdtemp, readFile, readdir, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileStore, type FileStoreOptions } from '../../src/store/file-store.js';
import { RevisionCompactedError } from '../../src/store/store.js';
import type { ApiObject } from '../../src/api/meta.js';
import { captureLogger, cluster, ref, storeConformance } from '../helpers/store-conformance.js';

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'meshfed-store-'));
  try {
    await fn(join(dir, 'data'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function open(dir: string, opts: FileStoreOptions = {}): Promise<FileStore> {
  return FileStore.open(dir, { logger: captureLogger(), ...opts });
}

async function walLines(dir: string): Promise<string[]> {
  const text = await readFile(join(dir, 'wal.jsonl'), 'utf8');
  return text.split('\n').filter((l) => l !== '');
}

function privateWal(store: FileStore): FileHandle {
  return (store as unknown as { wal: FileHandle }).wal;
}

storeConformance('FileStore', {
  async open(opts = {}) {
    const dir = await mkdtemp(join(tmpdir(), 'meshfed-store-'));
    const s = await FileStore.open(join(dir, 'data'), { logger: captureLogger(), ...opts });
    const close = s.close.bind(s);
    // The directory goes with the store.
    s.close = async () => {
      await close();
      await rm(dir, { recursive: true, force: true });
    };
    return s;
  },
});

test('an unchanged put writes nothing to the log; a multi-op commit is one log line and replays the same after restart', async () => {
  await withDir(async (dir) => {
    const s = await open(dir);
    try {
      await s.commit([{ type: 'put', object: cluster('old') }]);
      const walBefore = await readFile(join(dir, 'wal.jsonl'), 'utf8');
      assert.equal((await s.commit([{ type: 'put', object: cluster('old') }])).results[0]!.outcome, 'unchanged');
      assert.equal(await readFile(join(dir, 'wal.jsonl'), 'utf8'), walBefore);
      await s.commit([
        { type: 'put', object: cluster('a') },
        { type: 'delete', ref: ref('old') },
        { type: 'put', object: cluster('tmp') },
        { type: 'delete', ref: ref('tmp') },
        { type: 'put', object: cluster('a', 'r9') },
      ]);
      assert.equal((await walLines(dir)).length, 2, 'one log line per commit');
    } finally {
      await s.close();
    }
    const s2 = await open(dir);
    try {
      assert.deepEqual(
        (await s2.list()).map((o) => [o.metadata.name, (o.spec as { region: string }).region, o.metadata.generation]),
        [['a', 'r9', 2]],
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
