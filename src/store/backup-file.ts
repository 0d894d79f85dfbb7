// The backup file of `meshfed backup` / `meshfed restore`: JSON lines, gzip
// when the name ends in .gz (read either way, by the gzip magic bytes).
//
//   line 1      {"format":"meshfed-backup","version":1,"meshfedVersion":..,"createdAt":..,"source":..,
//                "stores":{"main":{"revision":R,"objects":N},"audit":{...}}}
//   lines 2..   {"store":"main"|"audit","object":{...}}   every object, as stored
//   last line   {"end":{"objects":N,"sha256":"<hex>"}}     sha256 over the object lines, each with its \n
//
// Invariants: the file is written under a temporary name with mode 0600 (it
// holds the hub's encrypted root key and credential hashes), fsynced, then
// renamed into place, so a file by the final name is complete; an existing
// file is never overwritten. Reading refuses a foreign or newer format, bad
// JSON (naming the line), a missing end line (truncated), and counts or a
// checksum that do not match the header.
import { createHash, randomUUID } from 'node:crypto';
import { open, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import type { ApiObject } from '../api/meta.js';
import { errorMessage, MeshfedError } from '../util/errors.js';
import { HUB_STORES, type HubStoreName } from './copy.js';
import { fsyncDir } from './disk.js';
import { isRecord, isStorable } from './shapes.js';

export const BACKUP_FORMAT = 'meshfed-backup';
export const BACKUP_VERSION = 1;

export interface BackupHeader {
  format: typeof BACKUP_FORMAT;
  version: number;
  meshfedVersion: string;
  /** RFC 3339. */
  createdAt: string;
  /** Where the stores were read (a directory or etcd://...). */
  source: string;
  stores: Record<HubStoreName, { revision: number; objects: number }>;
}

export interface Backup {
  header: BackupHeader;
  stores: Record<HubStoreName, ApiObject[]>;
}

/** Writes `backup` to `file` (gzip if it ends in .gz); refuses an existing file. Returns the bytes written. */
export async function writeBackup(file: string, backup: Backup): Promise<number> {
  if (await exists(file)) throw new MeshfedError('conflict', `backup file ${file} exists: remove it or give another name (a backup never overwrites a file)`);
  const hash = createHash('sha256');
  const lines: string[] = [JSON.stringify(backup.header) + '\n'];
  let count = 0;
  for (const store of HUB_STORES) {
    for (const object of backup.stores[store]) {
      const line = JSON.stringify({ store, object }) + '\n';
      hash.update(line);
      lines.push(line);
      count++;
    }
  }
  lines.push(JSON.stringify({ end: { objects: count, sha256: hash.digest('hex') } }) + '\n');
  const text = Buffer.from(lines.join(''));
  const data = file.endsWith('.gz') ? gzipSync(text) : text;
  const tmp = join(dirname(file), `.${basename(file)}.${randomUUID()}.tmp`);
  const fh = await open(tmp, 'wx', 0o600);
  try {
    await fh.writeFile(data);
    await fh.sync();
    await fh.close();
    if (await exists(file)) throw new MeshfedError('conflict', `backup file ${file} appeared while the backup was written: remove it or give another name`);
    await rename(tmp, file);
  } catch (err) {
    await fh.close().catch(() => undefined);
    await rm(tmp, { force: true });
    throw err;
  }
  await fsyncDir(dirname(file));
  return data.length;
}

/** Reads and checks a backup file; every refusal is 'invalid' naming the file (and the line). */
export async function readBackup(file: string): Promise<Backup> {
  let raw: Buffer;
  try {
    raw = await readFile(file);
  } catch (err) {
    throw new MeshfedError((err as NodeJS.ErrnoException).code === 'ENOENT' ? 'not-found' : 'invalid', `backup file ${file}: ${errorMessage(err)}`, { cause: err });
  }
  const bad = (msg: string): MeshfedError => new MeshfedError('invalid', `backup file ${file}: ${msg}`);
  let text: string;
  if (raw[0] === 0x1f && raw[1] === 0x8b) {
    try {
      text = gunzipSync(raw).toString('utf8');
    } catch (err) {
      throw bad(`damaged or truncated gzip data (${errorMessage(err)})`);
    }
  } else text = raw.toString('utf8');

  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  const parse = (i: number): Record<string, unknown> => {
    let v: unknown;
    try {
      v = JSON.parse(lines[i]!);
    } catch (err) {
      throw bad(`line ${i + 1}: bad JSON (${errorMessage(err)})${i === lines.length - 1 ? ': the file is truncated' : ''}`);
    }
    if (!isRecord(v)) throw bad(`line ${i + 1}: not a JSON object`);
    return v;
  };
  if (lines.length === 0) throw bad('empty file: not a meshfed backup');
  let first: Record<string, unknown>;
  try {
    first = parse(0);
  } catch {
    throw bad('not a meshfed backup (line 1 is not its JSON header)');
  }
  if (first.format !== BACKUP_FORMAT) throw bad(`not a meshfed backup (line 1 has format ${JSON.stringify(first.format)}, want "${BACKUP_FORMAT}")`);
  if (first.version !== BACKUP_VERSION)
    throw bad(`format version ${JSON.stringify(first.version)} is not supported (this meshfed reads version ${BACKUP_VERSION}; written by meshfed ${String(first.meshfedVersion)})`);
  const header = checkHeader(first, bad);

  const stores: Record<HubStoreName, ApiObject[]> = { main: [], audit: [] };
  const hash = createHash('sha256');
  let end: Record<string, unknown> | undefined;
  for (let i = 1; i < lines.length; i++) {
    const v = parse(i);
    if (isRecord(v.end)) {
      if (i !== lines.length - 1) throw bad(`line ${i + 1}: the end line is followed by ${lines.length - 1 - i} more lines`);
      end = v.end;
      break;
    }
    if (v.store !== 'main' && v.store !== 'audit') throw bad(`line ${i + 1}: "store" is ${JSON.stringify(v.store)}, want "main" or "audit"`);
    if (!isStorable(v.object)) throw bad(`line ${i + 1}: "object" needs a kind and metadata.name`);
    hash.update(lines[i]! + '\n');
    stores[v.store].push(v.object);
  }
  const count = stores.main.length + stores.audit.length;
  if (end === undefined)
    throw bad(`truncated: it ends at line ${lines.length} without the end line (${count} objects read, the header says ${header.stores.main.objects + header.stores.audit.objects})`);
  if (end.objects !== count) throw bad(`the end line counts ${String(end.objects)} objects, the file has ${count}`);
  if (end.sha256 !== hash.digest('hex')) throw bad('checksum mismatch: the object lines were changed after the backup was written');
  for (const s of HUB_STORES) {
    if (stores[s].length !== header.stores[s].objects) throw bad(`the header says the ${s} store has ${header.stores[s].objects} objects, the file has ${stores[s].length}`);
  }
  return { header, stores };
}

function checkHeader(h: Record<string, unknown>, bad: (msg: string) => MeshfedError): BackupHeader {
  const stores = h.stores;
  if (!isRecord(stores)) throw bad('line 1: the header has no "stores"');
  for (const s of HUB_STORES) {
    const e = stores[s];
    if (!isRecord(e) || typeof e.revision !== 'number' || typeof e.objects !== 'number') throw bad(`line 1: the header's stores.${s} needs a revision and an object count`);
  }
  if (typeof h.createdAt !== 'string' || typeof h.source !== 'string') throw bad('line 1: the header needs createdAt and source');
  return h as unknown as BackupHeader;
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}
