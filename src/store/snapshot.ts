// The snapshot file: the state at one revision, which lets the log before it be
// cut. Format: `{"rev":N,"objects":[` then one object per line, then `]}`.
// Invariants: a snapshot is written to snapshot.json.tmp, fsynced, renamed over
// snapshot.json and the directory fsynced, so snapshot.json is always a whole
// snapshot; a leftover temp file is from a crash before its rename and is
// deleted at start.
import { open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { ApiObject } from '../api/meta.js';
import { errorMessage, MeshfedError } from '../util/errors.js';
import { internObject } from '../util/intern.js';
import { fsyncDir, readIfExists, writeAll } from './disk.js';
import { isRecord, isRevision, isStorable } from './shapes.js';

export const SNAPSHOT = 'snapshot.json';

export interface Snapshot {
  rev: number;
  /** Interned, as the store keeps them. */
  objects: ApiObject[];
  /** Size of the file. */
  bytes: number;
}

/** Reads the snapshot if there is one (after deleting a leftover temp file); throws if it is damaged. */
export async function readSnapshot(dataDir: string): Promise<Snapshot | undefined> {
  // A leftover temp snapshot is from a crash before its rename: the real snapshot and log are intact.
  await rm(join(dataDir, SNAPSHOT + '.tmp'), { force: true });
  const snapPath = join(dataDir, SNAPSHOT);
  const snapText = await readIfExists(snapPath);
  if (snapText === undefined) return undefined;
  return parseSnapshot(snapText, snapPath);
}

/** Parses a snapshot file's content; throws naming `snapPath` if it is damaged. */
export function parseSnapshot(snapText: Buffer, snapPath: string): Snapshot {
  let snap: unknown;
  try {
    snap = JSON.parse(snapText.toString('utf8'));
  } catch (err) {
    throw new MeshfedError('internal', `store snapshot ${snapPath} is corrupt: ${errorMessage(err)}`, { reason: 'StoreCorrupt', cause: err });
  }
  if (!isRecord(snap) || !isRevision(snap.rev) || !Array.isArray(snap.objects) || !snap.objects.every(isStorable)) {
    throw new MeshfedError('internal', `store snapshot ${snapPath} is malformed`, { reason: 'StoreCorrupt' });
  }
  const objects: ApiObject[] = [];
  for (const o of snap.objects as ApiObject[]) objects.push(internObject(o));
  return { rev: snap.rev, objects, bytes: snapText.length };
}

/** Writes a snapshot durably (see the header); returns its size in bytes. */
export async function writeSnapshot(dataDir: string, rev: number, objects: readonly ApiObject[]): Promise<number> {
  const snapPath = join(dataDir, SNAPSHOT);
  const tmp = snapPath + '.tmp';
  const h = await open(tmp, 'w', 0o600);
  let bytes = 0;
  try {
    let chunk = `{"rev":${rev},"objects":[`;
    for (let i = 0; i < objects.length; i++) {
      chunk += (i === 0 ? '\n' : ',\n') + JSON.stringify(objects[i]);
      if (chunk.length > 1 << 20) {
        const buf = Buffer.from(chunk, 'utf8');
        bytes += buf.length;
        await writeAll(h, buf);
        chunk = '';
      }
    }
    chunk += '\n]}\n';
    const buf = Buffer.from(chunk, 'utf8');
    bytes += buf.length;
    await writeAll(h, buf);
    await h.sync();
  } finally {
    await h.close();
  }
  await rename(tmp, snapPath);
  await fsyncDir(dataDir);
  return bytes;
}
