// Store integrity with real files in temp dirs: what start refuses (corruption,
// naming file and byte offset) and what it cuts (only a torn tail); the offline
// `store check` and `store repair` (library and the real CLI process), and the
// directory lock that keeps them off a running store.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { appendFile, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ApiObject } from '../../src/api/meta.js';
import { checkStore, repairStore, type StoreCheckReport } from '../../src/store/check.js';
import { FileStore, type FileStoreOptions, type StoreLogger } from '../../src/store/file-store.js';
import { MeshfedError } from '../../src/util/errors.js';
import { REPO_ROOT } from '../helpers/procs.js';

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'meshfed-integrity-'));
  try {
    await fn(join(dir, 'data'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function quietLogger(): StoreLogger & { lines: string[] } {
  const lines: string[] = [];
  return { lines, warn: (m) => lines.push(`warn ${m}`), error: (m) => lines.push(`error ${m}`) };
}

function open(dir: string, opts: FileStoreOptions = {}): Promise<FileStore> {
  return FileStore.open(dir, { logger: quietLogger(), ...opts });
}

function cluster(name: string): ApiObject {
  return { apiVersion: 'meshfed.io/v1alpha1', kind: 'Cluster', metadata: { name }, spec: { region: 'r', zones: ['z'], network: 'default' } };
}

/** A store with one commit per name (revisions 1..n); returns the log's lines with their newlines. */
async function seed(dir: string, names: string[], opts: FileStoreOptions = {}): Promise<string[]> {
  const s = await open(dir, opts);
  for (const n of names) await s.commit([{ type: 'put', object: cluster(n) }]);
  await s.close();
  return (await readFile(join(dir, 'wal.jsonl'), 'utf8')).split(/(?<=\n)/);
}

/** Flips one byte inside the payload of a line (the line stays complete: its newline is kept). */
function flip(line: string): string {
  const i = line.indexOf('"region":"r"') + 10;
  return line.slice(0, i) + 'x' + line.slice(i + 1);
}

const byteLength = (lines: string[]) => Buffer.byteLength(lines.join(''));

async function names(s: FileStore): Promise<string[]> {
  return (await s.list()).map((o) => o.metadata.name);
}

function isCorrupt(file: string, offset: number, revision?: number) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof MeshfedError, String(err));
    assert.equal(err.reason, 'StoreCorrupt');
    assert.ok(err.message.includes(file), err.message);
    assert.ok(err.message.includes(`byte ${offset}`), err.message);
    assert.ok(err.message.includes('refusing to start'), err.message);
    if (revision !== undefined) assert.ok(err.message.includes(`revision ${revision}`), err.message);
    return true;
  };
}

test('a flipped byte in the last complete record refuses the start, naming file, offset and revision, and changes nothing', async () => {
  await withDir(async (dir) => {
    const lines = await seed(dir, ['c1', 'c2', 'c3']);
    const wal = join(dir, 'wal.jsonl');
    const damaged = lines[0]! + lines[1]! + flip(lines[2]!);
    await writeFile(wal, damaged);
    await assert.rejects(open(dir), isCorrupt(wal, byteLength(lines.slice(0, 2)), 3));
    // Nothing was cut, and the failed start released the lock: the same refusal again.
    assert.equal(await readFile(wal, 'utf8'), damaged);
    await assert.rejects(open(dir), isCorrupt(wal, byteLength(lines.slice(0, 2))));
  });
});

test('a flipped byte in a middle record refuses the start naming file and offset', async () => {
  await withDir(async (dir) => {
    const lines = await seed(dir, ['c1', 'c2', 'c3']);
    const wal = join(dir, 'wal.jsonl');
    await writeFile(wal, lines[0]! + flip(lines[1]!) + lines[2]!);
    await assert.rejects(open(dir), isCorrupt(wal, byteLength(lines.slice(0, 1)), 2));
  });
});

test('a truncated last record (torn write) is cut, with a message saying so, and every earlier write survives', async () => {
  await withDir(async (dir) => {
    const lines = await seed(dir, ['c1', 'c2', 'c3']);
    const wal = join(dir, 'wal.jsonl');
    const good = lines.slice(0, 2).join('');
    await writeFile(wal, good + lines[2]!.slice(0, lines[2]!.length - 20)); // no newline: never completed
    const logger = quietLogger();
    const s = await FileStore.open(dir, { logger });
    try {
      assert.equal(s.revision(), 2);
      assert.deepEqual(await names(s), ['c1', 'c2']);
      assert.ok(
        logger.lines.some((l) => l.startsWith('warn') && l.includes('torn write') && l.includes(wal) && l.includes(`byte ${Buffer.byteLength(good)}`)),
        logger.lines.join('\n'),
      );
      assert.equal(await readFile(wal, 'utf8'), good);
    } finally {
      await s.close();
    }
  });
});

test('a snapshot without its log, or a log that does not follow the snapshot, refuses the start naming the files', async () => {
  await withDir(async (dir) => {
    await seed(dir, ['a', 'b', 'c'], { compactEvery: 3 }); // snapshot at revision 3, empty log
    const snap = join(dir, 'snapshot.json');
    const wal = join(dir, 'wal.jsonl');
    assert.equal((JSON.parse(await readFile(snap, 'utf8')) as { rev: number }).rev, 3);
    const lines = await seed(dir, ['d', 'e']); // revisions 4 and 5 in the log

    // The log's first record after the snapshot is missing: revision 5 follows snapshot 3.
    await writeFile(wal, lines[1]!);
    await assert.rejects(open(dir), (err: Error) => err.message.includes(wal) && err.message.includes(snap) && err.message.includes('revision 5 but 4 was expected'));
    await rm(wal);
    await assert.rejects(open(dir), (err: unknown) => {
      assert.ok(err instanceof MeshfedError && err.reason === 'StoreCorrupt');
      assert.ok(err.message.includes(snap) && err.message.includes(wal) && err.message.includes('missing'), err.message);
      return true;
    });
    assert.ok(!(await readdir(dir)).includes('wal.jsonl'), 'the refused start did not create a log');
  });
});

test('check reports each case: clean, torn tail, corrupt last record, corrupt middle record, snapshot without log', async () => {
  await withDir(async (dir) => {
    const lines = await seed(dir, ['c1', 'c2', 'c3']);
    const wal = join(dir, 'wal.jsonl');

    const clean = await checkStore(dir);
    assert.equal(clean.status, 'clean');
    assert.equal(clean.records, 3);
    assert.equal(clean.revision, 3);
    assert.deepEqual(clean.segments, [{ file: wal, bytes: byteLength(lines), records: 3, firstRevision: 1, lastRevision: 3, validBytes: byteLength(lines) }]);
    assert.equal(clean.problem, null);

    await appendFile(wal, '0123456789abcdef {"rev":4,"ops":[');
    const torn = await checkStore(dir);
    assert.equal(torn.status, 'torn-tail');
    assert.deepEqual(torn.tornTail, { file: wal, offset: byteLength(lines), bytes: 33 });
    assert.equal(torn.revision, 3);
    assert.equal(Buffer.byteLength(await readFile(wal)), byteLength(lines) + 33, 'check cuts nothing');

    await writeFile(wal, lines[0]! + lines[1]! + flip(lines[2]!));
    const last = await checkStore(dir);
    assert.equal(last.status, 'damaged');
    assert.equal(last.problem?.kind, 'corrupt-record');
    assert.equal(last.problem?.file, wal);
    assert.equal(last.problem?.offset, byteLength(lines.slice(0, 2)));
    assert.equal(last.problem?.line, 3);
    assert.equal(last.problem?.revision, 3);
    assert.equal(last.records, 2);

    await writeFile(wal, lines[0]! + flip(lines[1]!) + lines[2]!);
    const middle = await checkStore(dir);
    assert.equal(middle.status, 'damaged');
    assert.equal(middle.problem?.offset, byteLength(lines.slice(0, 1)));
    assert.equal(middle.problem?.revision, 2);
    assert.equal(middle.revision, 1);
  });
  await withDir(async (dir) => {
    await seed(dir, ['a', 'b', 'c'], { compactEvery: 3 });
    await rm(join(dir, 'wal.jsonl'));
    const r = await checkStore(dir);
    assert.equal(r.status, 'damaged');
    assert.equal(r.problem?.kind, 'snapshot-without-log');
    assert.equal(r.problem?.file, join(dir, 'snapshot.json'));
  });
});

test('repair keeps the valid prefix and a backup; dry run changes nothing; the store then starts with exactly the records before the damage', async () => {
  await withDir(async (dir) => {
    const lines = await seed(dir, ['c1', 'c2', 'c3', 'c4', 'c5']);
    const wal = join(dir, 'wal.jsonl');
    const damaged = lines[0]! + lines[1]! + flip(lines[2]!) + lines[3]! + lines[4]!;
    await writeFile(wal, damaged);

    const dry = await repairStore(dir, { dryRun: true });
    assert.equal(dry.repaired, false);
    assert.deepEqual(dry.actions, [{ file: wal, action: 'truncate', fromBytes: Buffer.byteLength(damaged), toBytes: byteLength(lines.slice(0, 2)), backup: dry.actions[0]!.backup }]);
    assert.equal(dry.droppedRecords, 3);
    assert.deepEqual(dry.droppedRevisions, [3, 4, 5]);
    assert.equal(await readFile(wal, 'utf8'), damaged);
    assert.deepEqual((await readdir(dir)).sort(), ['wal.jsonl']);

    const now = new Date('2026-12-02T01:30:00.000Z');
    const r = await repairStore(dir, { now });
    assert.equal(r.repaired, true);
    assert.equal(r.droppedRecords, 3);
    assert.deepEqual(r.droppedRevisions, [3, 4, 5]);
    assert.equal(r.keptRevision, 2);
    const backup = `${wal}.damaged-2026-12-02T01-30-00-000Z`;
    assert.equal(r.actions[0]!.backup, backup);
    assert.equal(await readFile(backup, 'utf8'), damaged, 'the damaged file is kept as it was');
    assert.equal(await readFile(wal, 'utf8'), lines[0]! + lines[1]!);
    assert.equal(r.after?.status, 'clean');

    const s = await open(dir);
    try {
      assert.equal(s.revision(), 2);
      assert.deepEqual(await names(s), ['c1', 'c2']);
      assert.equal((await s.commit([{ type: 'put', object: cluster('c6') }])).revision, 3);
    } finally {
      await s.close();
    }
    assert.equal((await repairStore(dir)).note, 'the store is clean: nothing to repair');
  });
});

test('repair of a snapshot without its log starts a new log after the snapshot', async () => {
  await withDir(async (dir) => {
    await seed(dir, ['a', 'b', 'c'], { compactEvery: 3 });
    await rm(join(dir, 'wal.jsonl'));
    const r = await repairStore(dir);
    assert.equal(r.repaired, true);
    assert.deepEqual(
      r.actions.map((a) => a.action),
      ['create'],
    );
    const s = await open(dir);
    try {
      assert.deepEqual(await names(s), ['a', 'b', 'c']);
    } finally {
      await s.close();
    }
  });
});

test('check and repair refuse while the store is open (the directory lock)', async () => {
  await withDir(async (dir) => {
    const s = await open(dir);
    try {
      await s.commit([{ type: 'put', object: cluster('c1') }]);
      for (const run of [() => checkStore(dir), () => repairStore(dir)]) {
        await assert.rejects(run(), (err: unknown) => err instanceof MeshfedError && err.code === 'conflict' && err.message.includes(dir));
      }
      // Another process (the real CLI) sees this process's lock.
      const cli = runCli(['store', 'check', '--data-dir', dir]);
      assert.equal(cli.status, 5, cli.stderr);
      assert.ok(cli.stderr.includes(`locked by process ${process.pid}`), cli.stderr);
    } finally {
      await s.close();
    }
    assert.equal((await checkStore(dir)).status, 'clean');
  });
});

test('the CLI: check exits 0 clean and 1 damaged with the problem in -o json; repair recovers and the store starts', async () => {
  await withDir(async (dir) => {
    const lines = await seed(dir, ['c1', 'c2', 'c3']);
    const wal = join(dir, 'wal.jsonl');
    const ok = runCli(['store', 'check', '--data-dir', dir]);
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /status: clean \(3 log records, revision 3\)/);

    await writeFile(wal, lines[0]! + flip(lines[1]!) + lines[2]!);
    const bad = runCli(['store', 'check', '--data-dir', dir, '-o', 'json']);
    assert.equal(bad.status, 1, bad.stderr);
    const report = JSON.parse(bad.stdout) as StoreCheckReport;
    assert.equal(report.problem?.file, wal);
    assert.equal(report.problem?.offset, byteLength(lines.slice(0, 1)));

    const dry = runCli(['store', 'repair', '--data-dir', dir, '--dry-run']);
    assert.equal(dry.status, 0, dry.stderr);
    assert.match(dry.stdout, /dropped 2 records; revisions 2-3; the store starts at revision 1/);
    const fixed = runCli(['store', 'repair', '--data-dir', dir]);
    assert.equal(fixed.status, 0, fixed.stderr);
    assert.match(fixed.stdout, /copy kept as .*wal\.jsonl\.damaged-/);
    const s = await open(dir);
    try {
      assert.deepEqual(await names(s), ['c1']);
    } finally {
      await s.close();
    }
  });
});

function runCli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(REPO_ROOT, 'bin', 'meshfed.js'), ...args], { encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('a damaged line inside the last group write refuses the start even though the group looks complete', async () => {
  await withDir(async (dir) => {
    const s = await open(dir);
    await s.commit([{ type: 'put', object: cluster('first') }]);
    await Promise.all(Array.from({ length: 20 }, (_, i) => s.commit([{ type: 'put', object: cluster(`g${i}`) }])));
    await s.close();
    const wal = join(dir, 'wal.jsonl');
    const lines = (await readFile(wal, 'utf8')).split(/(?<=\n)/);
    const inGroup = lines.findIndex((l) => l.includes('"more":true'));
    assert.ok(inGroup >= 1, 'the concurrent commits were written as a group');
    lines[inGroup] = flip(lines[inGroup]!);
    await writeFile(wal, lines.join(''));
    await assert.rejects(open(dir), isCorrupt(wal, byteLength(lines.slice(0, inGroup))));
  });
});

test('two segments: a torn tail in the old one while the new one has records refuses; corruption in the old one is repaired by cutting it and emptying the new one', async () => {
  await withDir(async (dir) => {
    const lines = await seed(dir, ['c1', 'c2', 'c3']);
    const wal = join(dir, 'wal.jsonl');
    const old = join(dir, 'wal.old.jsonl');

    await writeFile(old, lines[0]! + lines[1]! + lines[2]!.slice(0, 30));
    await writeFile(wal, lines[2]!);
    await assert.rejects(open(dir), (err: Error) => err.message.includes(old) && err.message.includes(`byte ${byteLength(lines.slice(0, 2))}`) && err.message.includes('newer segment'));

    await writeFile(old, lines[0]! + flip(lines[1]!));
    const before = await checkStore(dir);
    assert.equal(before.problem?.file, old);
    assert.equal(before.problem?.offset, byteLength(lines.slice(0, 1)));
    const r = await repairStore(dir, { now: new Date('2026-12-02T02:00:00Z') });
    assert.deepEqual(
      r.actions.map((a) => [a.file, a.toBytes]),
      [
        [wal, 0],
        [old, byteLength(lines.slice(0, 1))],
      ],
    );
    assert.deepEqual(r.droppedRevisions, [2, 3]);
    assert.equal(await readFile(`${wal}.damaged-2026-12-02T02-00-00-000Z`, 'utf8'), lines[2]);
    assert.equal(await readFile(`${old}.damaged-2026-12-02T02-00-00-000Z`, 'utf8'), lines[0]! + flip(lines[1]!));
    const s = await open(dir);
    try {
      assert.equal(s.revision(), 1);
      assert.deepEqual(await names(s), ['c1']);
    } finally {
      await s.close();
    }
  });
});

test('kill -9 during concurrent commits never leaves corruption: the store starts with every acknowledged write', async () => {
  await withDir(async (dir) => {
    const storeModule = join(REPO_ROOT, 'dist', 'src', 'store', 'file-store.js');
    // Commits in groups of 8 forever, printing each acknowledged name, until killed.
    const script = `
      const { FileStore } = await import(${JSON.stringify(storeModule)});
      const s = await FileStore.open(${JSON.stringify(dir)}, { logger: { warn() {}, error() {} }, compactMinLogBytes: 200000 });
      for (let i = 0; ; i += 8) {
        await Promise.all(Array.from({ length: 8 }, (_, j) => s.commit([{ type: 'put', object: { apiVersion: 'meshfed.io/v1alpha1', kind: 'Cluster', metadata: { name: process.env.ROUND + '-k' + (i + j) }, spec: { pad: 'p'.repeat(500) } } }]).then(() => process.stdout.write(process.env.ROUND + '-k' + (i + j) + '\\n'))));
      }`;
    const acknowledged = new Set<string>();
    for (let round = 0; round < 3; round++) {
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ROUND: String(round) } });
      const target = acknowledged.size + 300;
      const exited = new Promise<NodeJS.Signals | null>((r) => child.once('exit', (_code, signal) => r(signal)));
      let buf = '';
      child.stdout.on('data', (d: Buffer) => {
        buf += d.toString('utf8');
        const parts = buf.split('\n');
        buf = parts.pop()!;
        for (const p of parts) acknowledged.add(p);
        if (acknowledged.size >= target && !child.killed) child.kill('SIGKILL');
      });
      assert.equal(await exited, 'SIGKILL', 'the writer ran until killed');
      const logger = quietLogger();
      const s = await FileStore.open(dir, { logger });
      try {
        const stored = new Set(await names(s));
        for (const n of acknowledged) assert.ok(stored.has(n), `acknowledged ${n} lost in round ${round}`);
        assert.ok(!logger.lines.some((l) => l.startsWith('error')), logger.lines.join('\n'));
      } finally {
        await s.close();
      }
    }
  });
});
