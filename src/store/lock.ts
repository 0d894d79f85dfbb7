// The data-directory lock: one store per data directory, across processes (the
// LOCK file holding the owner's pid) and within this process (a set of the
// directories it has open, since the LOCK file cannot tell our own pid's live
// lock from a stale one).
// Invariants: the LOCK file appears atomically with its content (link of a
// finished temp file), so a reader never sees a half-written pid; a lock whose
// pid is dead, or is our own pid from an earlier life (e.g. pid 1 in a restarted
// container), is stale and taken over.
import { randomUUID } from 'node:crypto';
import { link, realpath, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MeshfedError } from '../util/errors.js';
import { readIfExists } from './disk.js';

export const LOCK = 'LOCK';

/** Directories opened by this process, by canonical path. */
const openDirs = new Set<string>();

/** A held lock on a data directory. */
export class DataDirLock {
  private constructor(
    private readonly dataDir: string,
    /** The directory's real path: what identifies it within this process. */
    private readonly canonicalDir: string,
  ) {}

  /** Takes the directory (which must exist) for this store, or throws naming who holds it. */
  static async acquire(dataDir: string): Promise<DataDirLock> {
    const canonical = await realpath(dataDir);
    if (openDirs.has(canonical)) {
      throw new MeshfedError('conflict', `store data directory ${dataDir} is already open in this process (pid ${process.pid})`, { reason: 'DataDirLocked' });
    }
    openDirs.add(canonical);
    try {
      await acquireLockFile(dataDir);
    } catch (err) {
      openDirs.delete(canonical);
      throw err;
    }
    return new DataDirLock(dataDir, canonical);
  }

  /** Removes the LOCK file, then frees the directory in this process (not if the removal fails). */
  async release(): Promise<void> {
    await rm(join(this.dataDir, LOCK), { force: true });
    openDirs.delete(this.canonicalDir);
  }

  /** Release after a failed open: best effort on the file, the directory is freed regardless. */
  async abandon(): Promise<void> {
    await rm(join(this.dataDir, LOCK), { force: true }).catch(() => undefined);
    openDirs.delete(this.canonicalDir);
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by another user
  }
}

async function acquireLockFile(dataDir: string): Promise<void> {
  const lockPath = join(dataDir, LOCK);
  for (let attempt = 0; attempt < 5; attempt++) {
    const tmp = join(dataDir, `${LOCK}.${process.pid}.${randomUUID()}`);
    await writeFile(tmp, `${process.pid}\n`, { mode: 0o600 });
    try {
      await link(tmp, lockPath);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    } finally {
      await rm(tmp, { force: true });
    }
    const content = await readIfExists(lockPath);
    if (content === undefined) continue; // released meanwhile
    const pid = Number.parseInt(content.toString('utf8').trim(), 10);
    if (Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && pidAlive(pid)) {
      throw new MeshfedError('conflict', `store data directory ${dataDir} is locked by process ${pid} (${lockPath}); another hub is using it. ` + `If no such hub is running, delete ${lockPath}.`, {
        reason: 'DataDirLocked',
      });
    }
    await rm(lockPath, { force: true });
  }
  throw new Error(`could not acquire ${lockPath}: it keeps reappearing`);
}
