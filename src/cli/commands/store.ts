// `meshfed store check|repair`: offline integrity check of a hub's data
// directory and recovery of its valid prefix (the logic and the report objects
// are in store/check.ts; this file prints them). `meshfed store migrate`: a
// hub's stores from a data directory or etcd to another, verified (store/copy.ts;
// the report is printed as restore's, commands/backup.ts). All take the
// directory lock of a data directory, so they refuse while a hub runs on it.
// Exit codes: 0 clean (or repaired, or migrated and verified), 1 damaged (or
// not repaired, or the copy differs), 5 the directory is locked or the
// migrate target is not empty (docs/cli.md).
import type { Command } from 'commander';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { checkStore, repairStore, type StoreCheckReport, type StoreRepairReport } from '../../store/check.js';
import { copyHubStores, type CopyReport } from '../../store/copy.js';
import { describeLocation, importBatch, openHubStores, parseStoreLocation, sameLocation } from '../../store/location.js';
import { EXIT, MeshfedError } from '../../util/errors.js';
import { assertSourceNotEmpty, openSource, printCopyReport, progressReporter } from './backup.js';
import { outputOption } from '../flags.js';
import { parseFormat, print, table } from '../output.js';

export function addStoreCommands(program: Command): void {
  const store = program.command('store').description("the hub's stores, offline (stop the hub first): check a data directory's integrity, repair it, migrate to or from etcd");
  const dataDir = (): [string, string, string] => ['--data-dir <dir>', "the hub's data directory", join(homedir(), '.meshfed', 'hub')];
  store
    .command('check')
    .description('read the snapshot and the log; report records, revisions and the first problem (file and byte offset); exit 1 if the hub would refuse to start')
    .option(...dataDir())
    .addOption(outputOption())
    .action(async (o: { dataDir: string; output: string }) => {
      const format = parseFormat(o.output);
      const report = await checkStore(o.dataDir);
      print(report, format, () => checkText(report));
      if (report.status === 'damaged') process.exitCode = EXIT.failed;
    });
  store
    .command('repair')
    .description('keep the valid prefix of a damaged log: copy each damaged file to <file>.damaged-<time>, cut it at the last good record, report what was dropped')
    .option(...dataDir())
    .option('--dry-run', 'say what would be cut and dropped; change nothing')
    .addOption(outputOption())
    .action(async (o: { dataDir: string; output: string; dryRun?: boolean }) => {
      const format = parseFormat(o.output);
      const report = await repairStore(o.dataDir, { dryRun: o.dryRun === true });
      print(report, format, () => repairText(report));
      const ok = report.before.status === 'clean' || report.repaired || (report.dryRun && report.actions.length > 0);
      if (!ok) process.exitCode = EXIT.failed;
    });
  store
    .command('migrate')
    .description("copy a hub's stores (main and audit, every object with its metadata) into empty ones elsewhere, then verify object by object; exit 1 on any difference")
    .requiredOption('--from <dir|etcd://...>', 'where the stores are: a data directory or etcd://host:port[,host:port...][/prefix]')
    .requiredOption('--to <dir|etcd://...>', 'where to copy them (must be empty)')
    .addOption(outputOption())
    .action(async (o: { from: string; to: string; output: string }) => {
      const format = parseFormat(o.output);
      const from = parseStoreLocation(o.from, '--from');
      const to = parseStoreLocation(o.to, '--to');
      if (sameLocation(from, to)) throw new MeshfedError('usage', `--from and --to are the same store (${describeLocation(from)})`);
      const source = await openSource(from, '--from');
      let report: CopyReport;
      try {
        const stores = { main: source.main.scan(), audit: source.audit.scan() };
        assertSourceNotEmpty(stores.main.objects.length, from);
        const target = await openHubStores(to);
        try {
          report = await copyHubStores({ from: describeLocation(from), stores }, target, describeLocation(to), { ...importBatch(to), onStoreProgress: progressReporter() });
        } finally {
          await target.close();
        }
      } finally {
        await source.close();
      }
      printCopyReport(report, format, `migrated ${report.from} to ${report.to}`);
    });
}

function checkText(r: StoreCheckReport, hint = true): string {
  const rows: string[][] = [];
  if (r.snapshot) rows.push([r.snapshot.file, 'snapshot', String(r.snapshot.bytes), `${r.snapshot.objects} objects`, `at ${r.snapshot.revision}`]);
  for (const s of r.segments) {
    const revs = s.firstRevision === null ? '-' : `${s.firstRevision}..${s.lastRevision}`;
    rows.push([s.file, 'log', String(s.bytes), `${s.records} record${s.records === 1 ? '' : 's'}`, revs]);
  }
  let out = table(['FILE', 'KIND', 'BYTES', 'CONTENT', 'REVISIONS'], rows);
  out += `\nstatus: ${r.status} (${r.records} log records, revision ${r.revision})\n`;
  if (r.problem) {
    const where = r.problem.offset === null ? '' : ` at byte ${r.problem.offset}${r.problem.line === null ? '' : ` (line ${r.problem.line})`}`;
    out += `problem: ${r.problem.kind} in ${r.problem.file}${where}\n  ${r.problem.message}\n`;
    if (!r.problem.repairable) out += '  not repairable\n';
    else if (hint) out += `  \`meshfed store repair --data-dir ${r.dataDir}\` keeps the valid prefix (try --dry-run first)\n`;
  }
  if (r.tornTail) out += `torn tail: ${r.tornTail.bytes} bytes at byte ${r.tornTail.offset} of ${r.tornTail.file} (a write interrupted by a crash, never acknowledged; start cuts it)\n`;
  return out;
}

function repairText(r: StoreRepairReport): string {
  let out = checkText(r.before, false);
  if (r.note !== null) out += `\n${r.note}\n`;
  if (r.actions.length === 0) return out;
  out += `\n${r.dryRun ? 'would do (dry run, nothing changed)' : 'done'}:\n`;
  for (const a of r.actions) {
    out += a.action === 'create' ? `  created empty ${a.file}\n` : `  ${a.file}: ${a.fromBytes} -> ${a.toBytes} bytes (copy kept as ${a.backup})\n`;
  }
  const unreadable = r.unreadableRecords > 0 ? ` (${r.unreadableRecords} unreadable)` : '';
  out += `dropped ${r.droppedRecords} record${r.droppedRecords === 1 ? '' : 's'}${unreadable}; revisions ${ranges(r.droppedRevisions)}; the store starts at revision ${r.keptRevision}\n`;
  return out;
}

/** 3,4,5,9 -> "3-5, 9". */
function ranges(revs: number[]): string {
  if (revs.length === 0) return 'none readable';
  const out: string[] = [];
  let start = revs[0]!;
  let prev = start;
  for (const r of [...revs.slice(1), Number.NaN]) {
    if (r === prev + 1) {
      prev = r;
      continue;
    }
    out.push(start === prev ? String(start) : `${start}-${prev}`);
    start = prev = r;
  }
  return out.join(', ');
}
