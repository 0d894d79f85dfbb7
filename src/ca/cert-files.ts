// Writes a workload's credentials where gRPC's file_watcher provider (and
// anything else) reads them: cert.pem (leaf + chain), key.pem, ca.pem (roots).
// Cert and key change together: the files are symlinks into a versioned
// directory and one rename of the `..data` symlink switches all three at once
// (the Kubernetes atomic-writer layout), so a reader never pairs a new
// certificate with an old key.
import { mkdirSync, readdirSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync, lstatSync } from 'node:fs';
import path from 'node:path';

export const CERT_FILE = 'cert.pem';
export const KEY_FILE = 'key.pem';
export const CA_FILE = 'ca.pem';

export interface Credentials {
  certChainPem: string;
  keyPem: string;
  caPem: string;
}

export function writeCredentials(dir: string, c: Credentials): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const version = `..${Date.now()}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const vdir = path.join(dir, version);
  mkdirSync(vdir, { mode: 0o700 });
  writeFileSync(path.join(vdir, CERT_FILE), c.certChainPem, { mode: 0o644 });
  writeFileSync(path.join(vdir, KEY_FILE), c.keyPem, { mode: 0o600 });
  writeFileSync(path.join(vdir, CA_FILE), c.caPem, { mode: 0o644 });
  const data = path.join(dir, '..data');
  let old: string | undefined;
  try {
    old = readlinkSync(data);
  } catch {
    old = undefined;
  }
  const tmp = path.join(dir, `..data_tmp_${process.pid}`);
  rmSync(tmp, { force: true });
  symlinkSync(version, tmp);
  renameSync(tmp, data); // the atomic switch
  for (const f of [CERT_FILE, KEY_FILE, CA_FILE]) {
    const p = path.join(dir, f);
    let ok = false;
    try {
      ok = lstatSync(p).isSymbolicLink() && readlinkSync(p) === path.join('..data', f);
    } catch {
      ok = false;
    }
    if (!ok) {
      rmSync(p, { force: true });
      symlinkSync(path.join('..data', f), p);
    }
  }
  // Older versions go once nothing points at them (readers reopen by path).
  for (const e of readdirSync(dir)) if (e.startsWith('..') && e !== '..data' && e !== version && e !== old && !e.startsWith('..data_tmp')) rmSync(path.join(dir, e), { recursive: true, force: true });
}
