// `meshfed backup` and `meshfed restore`: a hub's two stores (main and audit,
// src/store/location.ts) to one file and back (src/store/backup-file.ts is the
// format, src/store/copy.ts the copy and its verification). Also the report
// and progress printing `meshfed store migrate` shares (src/cli/commands/store.ts).
// A data directory is read with its lock taken, so backup and restore refuse
// while a hub runs on it (exit 5); etcd allows readers beside running hubs.
// Exit codes: 0 done and verified, 1 a mismatch or a damaged file, 5 the
// target is not empty or the file exists (docs/cli.md).
import type { Command } from 'commander';
import type { ApiObject } from '../../api/meta.js';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { HUB_STORES, copyHubStores, digestObjects, type CopyReport, type HubStoreName } from '../../store/copy.js';
import { BACKUP_FORMAT, BACKUP_VERSION, readBackup, writeBackup, type BackupHeader } from '../../store/backup-file.js';
import { describeLocation, importBatch, openHubStores, parseStoreLocation, type HubStores, type StoreLocation } from '../../store/location.js';
import { EXIT, MeshfedError } from '../../util/errors.js';
import { meshfedVersion } from '../../util/version.js';
import { outputOption } from '../flags.js';
import { parseFormat, print, table } from '../output.js';

const SECRET_NOTE = "the file holds the hub's encrypted root key and credential hashes: keep it as a secret (it is created mode 0600)";

export function addBackupCommands(program: Command): void {
  const storeOption = (what: string): [string, string, string] => [
    '--store <dir|etcd://...>',
    `${what}: a data directory or etcd://host:port[,host:port...][/prefix]`,
    join(homedir(), '.meshfed', 'hub'),
  ];
  program
    .command('backup')
    .description("write a hub's stores (main and audit, each at one revision) to one file (gzip if it ends in .gz); a data directory only while its hub is stopped, etcd also while hubs run")
    .option(...storeOption('the stores to back up'))
    .requiredOption('-f, --filename <file>', 'the backup file to write (never overwritten; created 0600: it is a secret)')
    .addOption(outputOption())
    .action(runBackup);
  program
    .command('restore')
    .description('restore a backup file into empty stores, then verify every object and the audit chain; exit 1 on any difference')
    .requiredOption('-f, --filename <file>', 'the backup file (from meshfed backup)')
    .option(...storeOption('where to restore (must be empty; stop the hubs)'))
    .addOption(outputOption())
    .action(runRestore);
}

async function runBackup(o: { store: string; filename: string; output: string }): Promise<void> {
  const format = parseFormat(o.output);
  const loc = parseStoreLocation(o.store, '--store');
  const stores = await openSource(loc, '--store');
  let header: BackupHeader;
  let bytes: number;
  const objects: Record<HubStoreName, ApiObject[]> = { main: [], audit: [] };
  try {
    const scans = { main: stores.main.scan(), audit: stores.audit.scan() };
    assertSourceNotEmpty(scans.main.objects.length, loc);
    header = {
      format: BACKUP_FORMAT,
      version: BACKUP_VERSION,
      meshfedVersion: meshfedVersion(),
      createdAt: new Date().toISOString(),
      source: describeLocation(loc),
      stores: { main: { revision: scans.main.revision, objects: scans.main.objects.length }, audit: { revision: scans.audit.revision, objects: scans.audit.objects.length } },
    };
    for (const s of HUB_STORES) objects[s] = [...scans[s].objects];
    bytes = await writeBackup(o.filename, { header, stores: objects });
  } finally {
    await stores.close();
  }
  const kinds = HUB_STORES.flatMap((store) => digestObjects(objects[store]).kinds.map((k) => ({ store, ...k })));
  const report = { file: o.filename, bytes, header, kinds, secret: true };
  process.stderr.write(`meshfed: ${SECRET_NOTE}\n`);
  print(report, format, () => {
    let out = table(
      ['STORE', 'KIND', 'OBJECTS'],
      kinds.map((k) => [k.store, k.kind, String(k.objects)]),
    );
    const n = header.stores.main.objects + header.stores.audit.objects;
    out += `\nwrote ${o.filename}: ${bytes} bytes, ${n} objects (main at revision ${header.stores.main.revision}, audit at revision ${header.stores.audit.revision})\n`;
    return out;
  });
}

async function runRestore(o: { store: string; filename: string; output: string }): Promise<void> {
  const format = parseFormat(o.output);
  const backup = await readBackup(o.filename);
  const loc = parseStoreLocation(o.store, '--store');
  const target = await openHubStores(loc);
  let report: CopyReport;
  try {
    const source = {
      from: o.filename,
      stores: {
        main: { revision: backup.header.stores.main.revision, objects: backup.stores.main },
        audit: { revision: backup.header.stores.audit.revision, objects: backup.stores.audit },
      },
    };
    report = await copyHubStores(source, target, describeLocation(loc), { ...importBatch(loc), onStoreProgress: progressReporter() });
  } finally {
    await target.close();
  }
  printCopyReport(report, format, `restored ${o.filename} (a backup of ${backup.header.source} taken ${backup.header.createdAt} by meshfed ${backup.header.meshfedVersion}) into ${report.to}`);
}

/** A source's stores: a data directory must exist (opening one creates it otherwise). */
export async function openSource(loc: StoreLocation, flag: string): Promise<HubStores> {
  if (loc.kind === 'file' && !existsSync(loc.dir)) throw new MeshfedError('not-found', `${flag} ${loc.dir}: no such data directory`);
  return openHubStores(loc);
}

/** An empty main store is a wrong location far more often than a hub worth copying. */
export function assertSourceNotEmpty(objects: number, loc: StoreLocation): void {
  if (objects === 0) throw new MeshfedError('not-found', `the main store at ${describeLocation(loc)} is empty: nothing to copy (is the location right?)`);
}

/** Progress on stderr, at most once a second, for long copies. */
export function progressReporter(): (store: HubStoreName, done: number, total: number) => void {
  let last = Date.now();
  let shown = false;
  return (store, done, total) => {
    const now = Date.now();
    if (now - last < 1000 && !(shown && done === total)) return;
    last = now;
    shown = true;
    process.stderr.write(`meshfed: ${store} store: ${done}/${total} objects copied\n`);
  };
}

/** The summary of a migrate or restore; exit 1 when the copy differs from the source. */
export function printCopyReport(report: CopyReport, format: ReturnType<typeof parseFormat>, what: string): void {
  print(report, format, () => {
    const rows = report.stores.flatMap((s) => s.kinds.map((k) => [s.store, k.kind, String(k.objects)]));
    let out = table(['STORE', 'KIND', 'OBJECTS'], rows);
    out += `\n${what} in ${report.seconds.toFixed(1)} s\n`;
    for (const s of report.stores) out += `  ${s.store}: ${s.objects} objects (source revision ${s.sourceRevision}; revision ${s.revision} here: revisions are per store)\n`;
    if (report.verified) out += 'verified: every object is identical to the source (count and sha256 per kind, object by object)\n';
    else out += `NOT VERIFIED: the copy differs from the source:\n${report.mismatches.map((m) => `  ${m}\n`).join('')}`;
    const c = report.auditChain;
    if (c.ok) out += `audit chain: verifies (${c.records} records)\n`;
    else out += `audit chain: broken at seq ${c.broken?.seq}: ${c.broken?.problem}${report.verified ? ' (as in the source: the copy is faithful)' : ''}\n`;
    return out;
  });
  if (!report.verified) process.exitCode = EXIT.failed;
}
