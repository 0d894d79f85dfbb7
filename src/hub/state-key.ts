// The hub's state key: 32 bytes that encrypt the generated root keys where
// they live, in the hub's store (HubRootKey objects), with AES-256-GCM and the
// root's fingerprint as additional authenticated data (a sealed key cannot be
// passed off as another root's). Every hub replica on one store needs the same
// key: `--state-key-file` (base64 or hex in the file). With the embedded file
// store and no flag the hub generates <data dir>/state.key (0600) on its first
// start; with a shared store (etcd) and a generated root the flag is required.
// Invariants: the key and root key PEMs are never logged nor in errors; a key
// file readable by others is warned about (and tightened when the hub made it).
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { chmod, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { API_VERSION, type ApiObject } from '../api/meta.js';
import { MeshfedError } from '../util/errors.js';
import { writeFileDurable } from '../util/files.js';
import { logger } from '../util/log.js';

const log = logger('hub.state-key');

/** The store kind of a sealed root key; internal: never registered, served or sent to agents. */
export const ROOT_KEY_KIND = 'HubRootKey';
export const STATE_KEY_FILE = 'state.key';
const CREATE_HINT = 'create one with `head -c 32 /dev/urandom | base64 > state.key` (chmod 600), and give every hub replica the same file';

export interface StateKey {
  key: Buffer;
  /** Where it came from, for messages: the file. */
  source: string;
}

/** Reads a state key file: 32 bytes, base64 or hex (surrounding whitespace ignored). */
export async function readStateKeyFile(file: string, flag = '--state-key-file', ownFile = false): Promise<StateKey> {
  let text: string;
  try {
    const mode = (await stat(file)).mode & 0o777;
    if (mode & 0o077) {
      log.warn('the state key file is readable by others', { file, mode: mode.toString(8), fix: ownFile ? 'tightened to 0600' : `chmod 600 ${file}` });
      if (ownFile) await chmod(file, 0o600);
    }
    text = (await readFile(file, 'utf8')).trim();
  } catch (err) {
    throw new MeshfedError('invalid', `${flag} ${file}: cannot read it: ${(err as { code?: string }).code ?? String(err)}`, { cause: err });
  }
  const key = /^[0-9a-fA-F]{64}$/.test(text) ? Buffer.from(text, 'hex') : /^[A-Za-z0-9+/_-]+={0,2}$/.test(text) ? Buffer.from(text, 'base64') : undefined;
  if (key?.length !== 32) throw new MeshfedError('invalid', `${flag} ${file}: not a state key (32 bytes, base64 or hex); ${CREATE_HINT}`);
  return { key, source: file };
}

/**
 * The state key a hub runs with: the file given; else none when nothing needs
 * one (a user-supplied CA keeps its key outside); else, with a shared store,
 * a usage error saying how to make one; else <data dir>/state.key, generated
 * on the first start.
 */
export async function stateKeyFor(o: { file?: string; dataDir: string; needed: boolean; sharedStore: string | undefined }): Promise<StateKey | undefined> {
  if (o.file !== undefined) return readStateKeyFile(o.file);
  if (!o.needed) return undefined;
  if (o.sharedStore !== undefined) throw missingStateKey(o.sharedStore);
  // The data directory is locked by the hub's file store: no other process makes this file meanwhile.
  const file = join(o.dataDir, STATE_KEY_FILE);
  const exists = await stat(file).then(
    () => true,
    (err: { code?: string }) => (err.code === 'ENOENT' ? false : Promise.reject(err)),
  );
  if (!exists) {
    await writeFileDurable(file, randomBytes(32).toString('base64') + '\n', 0o600);
    log.info('generated the state key', { file });
  }
  return readStateKeyFile(file, 'state key', true);
}

/** The refusal to start on a shared store with a generated root and no --state-key-file. */
export function missingStateKey(sharedStore: string): MeshfedError {
  return new MeshfedError(
    'usage',
    `--store ${sharedStore} with a generated mesh root needs --state-key-file: the root keys are kept in the shared store, encrypted with it, and every hub replica needs the same file; ${CREATE_HINT}`,
  );
}

/** A root's key sealed with the state key: a HubRootKey object named by the root's fingerprint. */
export function sealRootKey(sk: StateKey, fingerprint: string, keyPem: string): ApiObject {
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', sk.key, iv);
  c.setAAD(Buffer.from(fingerprint));
  const ciphertext = Buffer.concat([c.update(keyPem, 'utf8'), c.final()]);
  const spec = { fingerprint, algorithm: 'AES-256-GCM', iv: iv.toString('base64'), tag: c.getAuthTag().toString('base64'), ciphertext: ciphertext.toString('base64') };
  return { apiVersion: API_VERSION, kind: ROOT_KEY_KIND, metadata: { name: fingerprint }, spec };
}

/** The key PEM of a HubRootKey object; a clear error when the state key is not the one it was sealed with. */
export function openRootKey(sk: StateKey, o: ApiObject): string {
  const s = o.spec as { fingerprint?: string; iv?: string; tag?: string; ciphertext?: string };
  const fp = o.metadata.name;
  if (s.fingerprint !== fp || typeof s.iv !== 'string' || typeof s.tag !== 'string' || typeof s.ciphertext !== 'string') {
    throw new MeshfedError('invalid', `root ${fp}: its sealed key (store object ${ROOT_KEY_KIND} ${fp}) is malformed`);
  }
  try {
    const d = createDecipheriv('aes-256-gcm', sk.key, Buffer.from(s.iv, 'base64'));
    d.setAAD(Buffer.from(fp));
    d.setAuthTag(Buffer.from(s.tag, 'base64'));
    return Buffer.concat([d.update(Buffer.from(s.ciphertext, 'base64')), d.final()]).toString('utf8');
  } catch {
    throw new MeshfedError(
      'invalid',
      `root ${fp}: cannot decrypt its key (store object ${ROOT_KEY_KIND} ${fp}): the state key ${sk.source} is not the one it was encrypted with; every hub replica needs the same --state-key-file`,
    );
  }
}
