// `meshfed audit` (the hub's audit log: who wrote what, and every denied
// request, newest first) and `meshfed audit verify` (walk the hash chain;
// exit 1 when it is broken). Filters go to the hub as query parameters; the
// hub's clock decides what `--since 1h` means.
import type { Command } from 'commander';
import type { ChainedAuditRecord, ChainVerdict } from '../../audit/chain.js';
import { MeshfedError } from '../../util/errors.js';
import { durationFlag, hubOption, integer, outputOption } from '../flags.js';
import { request } from '../http.js';
import { parseFormat, print, table } from '../output.js';

interface AuditFlags {
  since?: string;
  until?: string;
  who?: string;
  kind?: string;
  namespace?: string;
  outcome?: string;
  limit?: string;
  diff?: boolean;
  hub: string;
  output: string;
}

interface AuditAnswerBody {
  items: ChainedAuditRecord[];
  more: boolean;
  log: { records: number };
}

export function addAuditCommands(program: Command): void {
  const audit = program
    .command('audit')
    .description("the hub's audit log: every write and every denied request, newest first")
    .option('--since <time>', 'records since a duration ago (30m, 1h, 7d) or an RFC 3339 time')
    .option('--until <time>', 'records until a duration ago or an RFC 3339 time')
    .option('--who <principal>', 'who made the request: user:alice, agent:cluster1, alice, anonymous')
    .option('--kind <kind>', 'the kind (or hub area: Trust, Hub) the request was about')
    .option('-n, --namespace <namespace>', 'objects of this namespace')
    .option('--outcome <outcome>', 'allowed, denied or failed')
    .option('--limit <n>', 'at most this many records (1 to 1000)', '100')
    .option('--diff', 'print each record diff under it (table output)')
    .addOption(hubOption())
    .addOption(outputOption())
    .action(listAudit);
  audit
    .command('verify')
    .description('walk the hash chain of the audit log; exit 1 when a record was changed, removed or inserted')
    .addOption(hubOption())
    .addOption(outputOption())
    .action(verifyAudit);
}

function timeFlag(v: string, flag: string): string {
  if (/^[0-9.]+[a-z]+$/.test(v)) durationFlag(v, flag);
  else if (!Number.isFinite(Date.parse(v))) throw new MeshfedError('usage', `${flag}: "${v}" is neither a duration (30m, 1h, 7d) nor a time (2026-01-02T15:04:05Z)`);
  return v;
}

async function listAudit(o: AuditFlags): Promise<void> {
  const format = parseFormat(o.output);
  const q = new URLSearchParams();
  if (o.since !== undefined) q.set('since', timeFlag(o.since, '--since'));
  if (o.until !== undefined) q.set('until', timeFlag(o.until, '--until'));
  if (o.who !== undefined) q.set('who', o.who);
  if (o.kind !== undefined) q.set('kind', o.kind);
  if (o.namespace !== undefined) q.set('namespace', o.namespace);
  if (o.outcome !== undefined) {
    if (!['allowed', 'denied', 'failed'].includes(o.outcome)) throw new MeshfedError('usage', `--outcome: "${o.outcome}" is not allowed, denied or failed`);
    q.set('outcome', o.outcome);
  }
  if (o.limit !== undefined) {
    const n = integer(o.limit, '--limit');
    if (n < 1 || n > 1000) throw new MeshfedError('usage', `--limit: ${n} is not from 1 to 1000`);
    q.set('limit', String(n));
  }
  const r = await request<AuditAnswerBody>(o.hub, 'hub', 'GET', `api/v1alpha1/audit?${q.toString()}`);
  print(r, format, () => auditTable(r, format === 'wide', o.diff === true));
}

function auditTable(r: AuditAnswerBody, wide: boolean, withDiff: boolean): string {
  if (r.items.length === 0) return 'No audit records match.\n';
  const headers = wide ? ['SEQ', 'TIME', 'WHO', 'FROM', 'VERB', 'KIND', 'OBJECT', 'OUTCOME', 'REVISION', 'REQUEST', 'REASON'] : ['TIME', 'WHO', 'FROM', 'VERB', 'KIND', 'OBJECT', 'OUTCOME', 'REASON'];
  const row = (x: ChainedAuditRecord): string[] =>
    wide
      ? [String(x.seq), x.time, x.who, x.from, x.verb, x.kind, x.object || '-', x.outcome, x.revision === undefined ? '-' : String(x.revision), x.request, x.reason ?? '']
      : [x.time, x.who, x.from, x.verb, x.kind, x.object || '-', x.outcome, x.reason ?? ''];
  let out: string;
  if (!withDiff) out = table(headers, r.items.map(row));
  else {
    out = '';
    for (const x of r.items) {
      out += table(headers, [row(x)]);
      for (const l of x.diff ?? []) out += `    ${l}\n`;
      out += '\n';
    }
  }
  if (r.more) out += `(more records match: narrow the query or raise --limit; ${r.log.records} records are kept)\n`;
  return out;
}

async function verifyAudit(o: { hub: string; output: string }): Promise<void> {
  const format = parseFormat(o.output);
  const v = await request<ChainVerdict>(o.hub, 'hub', 'GET', 'api/v1alpha1/audit/verify');
  print(v, format, () => {
    const range = v.first === undefined ? 'no records' : `${v.records} records, seq ${v.first} to ${v.last}`;
    const from = v.anchor.seq === 0 ? 'from the start' : `from the anchor at seq ${v.anchor.seq} (older records removed by retention)`;
    if (v.ok) return `audit log verifies: ${range}, ${from}\n`;
    return `audit log is BROKEN at seq ${v.broken?.seq}: ${v.broken?.problem}\n(walked ${range}, ${from})\n`;
  });
  // After printing, so -o json still shows the verdict.
  if (!v.ok) process.exitCode = 1;
}
