// Offline integrity check and repair of a hub's data directory (`meshfed store
// check|repair`). Pure of the CLI: each returns a report object to print.
// Both take the directory lock, so they refuse while a hub runs on it.
// Invariants: check changes nothing on disk (not even the leftover temp
// snapshot start deletes); repair changes nothing unless there is something to
// repair and it can, copies every file before it changes it (`<file>.damaged-<time>`,
// fsynced, beside it), cuts log segments only at group boundaries (so what
// remains is the valid prefix, all of it acknowledged-shape records), and
// checks the result again before it answers. `dryRun` plans without writing.
import { constants } from 'node:fs';
import { copyFile, open, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { MeshfedError, errorMessage } from '../util/errors.js';
import { fsyncDir, readIfExists } from './disk.js';
import { inspectLog, type LogInspection, type SnapshotInfo, type StoreProblem } from './framing.js';
import { DataDirLock } from './lock.js';
import { parseSnapshot, SNAPSHOT } from './snapshot.js';
import { WAL, WAL_OLD } from './wal.js';

export interface SegmentReport {
  file: string;
  bytes: number;
  /** Valid records (complete groups before any damage). */
  records: number;
  firstRevision: number | null;
  lastRevision: number | null;
  /** Bytes of the valid prefix. */
  validBytes: number;
}

export type CheckStatus = 'clean' | 'torn-tail' | 'damaged';

export interface StoreCheckReport {
  dataDir: string;
  /** `torn-tail`: a crash interrupted the last write; the store starts and cuts it. `damaged`: the store refuses to start. */
  status: CheckStatus;
  snapshot: { file: string; revision: number; objects: number; bytes: number } | null;
  segments: SegmentReport[];
  /** Valid log records before the first problem. */
  records: number;
  /** The revision the snapshot plus the valid prefix of the log reach. */
  revision: number;
  /** The first problem that refuses a start. */
  problem: Omit<StoreProblem, 'cut'> | null;
  tornTail: { file: string; offset: number; bytes: number } | null;
}

export interface RepairAction {
  file: string;
  action: 'truncate' | 'create';
  fromBytes: number;
  toBytes: number;
  /** The copy kept of the file as it was (null for a created file). */
  backup: string | null;
}

export interface StoreRepairReport {
  dataDir: string;
  dryRun: boolean;
  before: StoreCheckReport;
  /** What was (or, on a dry run, would be) done, in order. */
  actions: RepairAction[];
  /** Log lines cut off (damaged, torn or after the damage). */
  droppedRecords: number;
  /** Revisions those lines claim, where they can be read, in file order. */
  droppedRevisions: number[];
  /** Of the dropped lines, those whose revision cannot be read. */
  unreadableRecords: number;
  /** The revision the store starts at afterwards. */
  keptRevision: number;
  repaired: boolean;
  /** Why nothing was done, when nothing was. */
  note: string | null;
  /** The check after the repair (null on a dry run or when nothing was done). */
  after: StoreCheckReport | null;
}

interface Inspected {
  report: StoreCheckReport;
  found: LogInspection;
  cut: StoreProblem['cut'];
}

/** Checks the data directory offline: snapshot, both log segments, the start-up rules. Changes nothing. */
export async function checkStore(dataDir: string): Promise<StoreCheckReport> {
  return withLock(dataDir, async () => (await inspect(dataDir)).report);
}

/** Recovers the valid prefix of a damaged store, keeping a copy of every file it changes. */
export async function repairStore(dataDir: string, opts: { dryRun?: boolean; now?: Date } = {}): Promise<StoreRepairReport> {
  return withLock(dataDir, async () => {
    const dryRun = opts.dryRun === true;
    const { report, found, cut } = await inspect(dataDir);
    const result: StoreRepairReport = {
      dataDir,
      dryRun,
      before: report,
      actions: [],
      droppedRecords: 0,
      droppedRevisions: [],
      unreadableRecords: 0,
      keptRevision: report.revision,
      repaired: false,
      note: null,
      after: null,
    };
    if (report.status === 'clean') {
      result.note = 'the store is clean: nothing to repair';
      return result;
    }
    if (report.problem !== null && !report.problem.repairable) {
      result.note = `cannot repair: ${report.problem.message}`;
      return result;
    }
    const stamp = (opts.now ?? new Date()).toISOString().replace(/[:.]/g, '-');
    const backupOf = (file: string) => `${file}.damaged-${stamp}`;

    if (report.problem?.kind === 'snapshot-without-log') {
      result.actions.push({ file: join(dataDir, WAL), action: 'create', fromBytes: 0, toBytes: 0, backup: null });
      result.note = `the log after snapshot revision ${report.revision} is missing: commits after it, if there were any, cannot be recovered`;
    } else {
      // Cut the damaged segment at the group boundary before the damage (or the torn tail), and empty every newer one.
      const at = cut ?? { segment: found.torn!.segment, offset: found.torn!.offset };
      for (let i = at.segment; i < found.scans.length; i++) {
        const s = found.scans[i]!;
        const toBytes = i === at.segment ? at.offset : 0;
        if (s.bytes === toBytes) continue;
        result.actions.unshift({ file: s.path, action: 'truncate', fromBytes: s.bytes, toBytes, backup: backupOf(s.path) }); // newest first
        const lines = [...s.records.filter((r) => r.offset >= toBytes).map((r) => ({ revision: r.rec.rev })), ...s.tail];
        result.droppedRecords += lines.length;
        for (const l of lines) {
          if (l.revision === undefined) result.unreadableRecords++;
          else result.droppedRevisions.push(l.revision);
        }
      }
    }
    if (dryRun) return result;

    for (const a of result.actions) {
      if (a.backup !== null) await keepCopy(a.file, a.backup);
    }
    await fsyncDir(dataDir);
    for (const a of result.actions) {
      const h = await open(a.file, a.action === 'create' ? 'ax' : 'r+', 0o600);
      try {
        if (a.action === 'truncate') await h.truncate(a.toBytes);
        await h.sync();
      } finally {
        await h.close();
      }
    }
    await fsyncDir(dataDir);
    result.repaired = true;
    result.after = (await inspect(dataDir)).report;
    result.keptRevision = result.after.revision;
    return result;
  });
}

async function withLock<T>(dataDir: string, fn: () => Promise<T>): Promise<T> {
  try {
    if (!(await stat(dataDir)).isDirectory()) throw new MeshfedError('invalid', `store data directory ${dataDir} is not a directory`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new MeshfedError('not-found', `store data directory ${dataDir} does not exist`);
    throw err;
  }
  const lock = await DataDirLock.acquire(dataDir);
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}

async function keepCopy(file: string, backup: string): Promise<void> {
  await copyFile(file, backup, constants.COPYFILE_EXCL);
  const h = await open(backup, 'r');
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

async function inspect(dataDir: string): Promise<Inspected> {
  const snapPath = join(dataDir, SNAPSHOT);
  const walPath = join(dataDir, WAL);
  const segments: { path: string; buf: Buffer }[] = [];
  for (const path of [join(dataDir, WAL_OLD), walPath]) {
    const buf = await readIfExists(path);
    if (buf !== undefined) segments.push({ path, buf });
  }
  const snapBuf = await readIfExists(snapPath);
  let snapshot: StoreCheckReport['snapshot'] = null;
  let snapProblem: StoreProblem | undefined;
  if (snapBuf !== undefined) {
    try {
      const snap = parseSnapshot(snapBuf, snapPath);
      snapshot = { file: snapPath, revision: snap.rev, objects: snap.objects.length, bytes: snap.bytes };
    } catch (err) {
      const message = `${errorMessage(err)}; the log before it was cut, so it cannot be rebuilt: restore the directory from a backup`;
      snapProblem = { kind: 'snapshot-corrupt', file: snapPath, offset: null, line: null, revision: null, message, repairable: false, cut: null };
    }
  }
  const info: SnapshotInfo | undefined = snapshot === null ? undefined : { path: snapPath, rev: snapshot.revision };
  const found = inspectLog(info, segments, walPath);
  const problem = snapProblem ?? found.problem;
  const torn = problem === undefined ? found.torn : undefined;
  const report: StoreCheckReport = {
    dataDir,
    status: problem !== undefined ? 'damaged' : torn !== undefined ? 'torn-tail' : 'clean',
    snapshot,
    segments: found.scans.map((s) => ({
      file: s.path,
      bytes: s.bytes,
      records: s.records.length,
      firstRevision: s.records[0]?.rec.rev ?? null,
      lastRevision: s.records[s.records.length - 1]?.rec.rev ?? null,
      validBytes: s.goodEnd,
    })),
    records: found.records,
    revision: found.revision,
    problem: problem === undefined ? null : publicProblem(problem),
    tornTail: torn === undefined ? null : { file: found.scans[torn.segment]!.path, offset: torn.offset, bytes: torn.bytes },
  };
  return { report, found, cut: problem?.cut ?? null };
}

function publicProblem(p: StoreProblem): Omit<StoreProblem, 'cut'> {
  const { cut: _cut, ...rest } = p;
  return rest;
}
