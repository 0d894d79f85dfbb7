// API objects at the hub: `meshfed apply`, `plan`, `explain`, `get`, `describe`,
// `delete` (src/cli/get.ts, describe.ts, delete.ts) and `crds`. Files given with -f (a List is its items) are read and validated here, all of them
// before anything is sent: one bad document anywhere and nothing is applied
// (the InvalidInputError names file, document, object and field; exit 1).
import type { Command } from 'commander';
import { readFile } from 'node:fs/promises';
import { InvalidInputError, type ApiObject } from '../../api/index.js';
import { MeshfedError } from '../../util/errors.js';
import { collect, hubOption, outputOption } from '../flags.js';
import { deleteAction } from '../delete.js';
import { describeCommand } from '../describe.js';
import { getCommand } from '../get.js';
import { request } from '../http.js';
import { parseFormat, print } from '../output.js';
import { parseAndValidate } from '../../registry.js';
import type { ExplainResult } from '../../analysis/explain.js';
import type { PlanResult } from '../../analysis/plan.js';

interface Outcomes {
  results: { object: string; outcome: string }[];
  warnings?: string[];
}

interface ExplainFlags {
  from: string;
  to: string;
  method?: string;
  serviceAccount?: string;
  with?: boolean;
  filename: string[];
  hub: string;
  output: string;
}

export function addObjectCommands(program: Command): void {
  program
    .command('apply')
    .description('create or update objects from YAML/JSON files (all or nothing); prints the warnings the hub finds (as plan does) on stderr')
    .requiredOption('-f, --filename <file>', "file to apply, '-' for stdin (repeatable)", collect, [])
    .option('--strict', 'warnings are errors: if the hub has any, nothing is applied (exit 1)')
    .addOption(hubOption())
    .addOption(outputOption())
    .action(async (o: { filename: string[]; strict?: boolean; hub: string; output: string }) => {
      const format = parseFormat(o.output);
      const objects = await readObjects(o.filename);
      // The hub checks before it commits: a strict apply it refuses writes nothing (400, reason Warnings).
      const path = o.strict ? 'api/v1alpha1/apply?strict=true' : 'api/v1alpha1/apply';
      const r = await request<Outcomes>(o.hub, 'hub', 'POST', path, { text: JSON.stringify(objects), contentType: 'application/json' });
      // An older hub answers no warnings.
      for (const w of r.warnings ?? []) process.stderr.write(`Warning: ${w}\n`);
      if (format === 'json' || format === 'yaml') print(r, format, () => '');
      else for (const x of r.results) process.stdout.write(`${x.object} ${x.outcome}\n`);
    });

  program
    .command('plan')
    .description('dry run: what applying these files would change in every cluster (xDS diff, affected services, traffic split before/after); writes nothing')
    .requiredOption('-f, --filename <file>', "file to plan, '-' for stdin (repeatable)", collect, [])
    .addOption(hubOption())
    .addOption(outputOption())
    .action(async (o: { filename: string[]; hub: string; output: string }) => {
      const format = parseFormat(o.output);
      const objects = await readObjects(o.filename);
      const r = await request<PlanResult>(o.hub, 'hub', 'POST', 'api/v1alpha1/plan', {
        text: JSON.stringify(objects),
        contentType: 'application/json',
      });
      if (format === 'json' || format === 'yaml') print(r, format, () => '');
      else {
        const { formatPlan } = await import('../../analysis/plan.js');
        process.stdout.write(formatPlan(r));
      }
    });

  program
    .command('explain')
    .description('why a call goes where it goes and whether it is allowed: route, endpoints with priorities and shares, access verdict per destination (computed at the hub; writes nothing)')
    .requiredOption('--from <cluster/namespace/workload>', 'the calling workload')
    .requiredOption('--to <service[.namespace]>', 'what it dials (a global, per-cluster or clusterset name; optional :port)')
    .option('--method <pkg.Service/Method>', 'the gRPC method called')
    .option('--service-account <sa>', "the caller's service account, when it is not a registered Workload")
    .option('--with', 'as if the -f files were applied (dry run, like plan)')
    .option('-f, --filename <file>', 'objects to consider applied (repeatable; implies --with)', collect, [])
    .addOption(hubOption())
    .addOption(outputOption())
    .action(explain);

  program
    .command('get')
    .description('list or show objects: clusters, meshes, services, workloads, globalservices, hubs (the hub replicas and their roles; -l selects, -w watches)')
    .argument('<kind>', 'kind, plural or short name')
    .argument('[name]', 'object name')
    .option('-n, --namespace <ns>', 'namespace (without it: every namespace)')
    .option('-A, --all-namespaces', 'every namespace (not with -n)')
    .option('-l, --selector <selector>', 'label selector: k=v, k!=v, k, !k, k in (a,b), k notin (a); comma = AND')
    .option('-w, --watch', 'after listing, print every change until Ctrl-C')
    .option('--watch-only', 'print changes only, without the list first')
    .option('--cluster <name>', 'cluster (discovered kinds)')
    .addOption(hubOption())
    .addOption(outputOption(true))
    .action(getCommand);

  program
    .command('describe')
    .description('one object for people: metadata, spec, what it selects or its agent, problems and recent changes')
    .argument('<kind>', 'kind, plural or short name (also globalservices)')
    .argument('<name>', 'object name')
    .option('-n, --namespace <ns>', 'namespace')
    .option('--cluster <name>', 'cluster (discovered kinds)')
    .addOption(hubOption())
    .action(describeCommand);

  program
    .command('delete')
    .description('delete objects by kind and name (or KIND/NAME, as get -o name prints), by -l selector or --all, or those in files')
    .argument('[kind]')
    .argument('[name]')
    .option('-n, --namespace <ns>', 'namespace (ignored for cluster-scoped kinds)')
    .option('-A, --all-namespaces', 'with -l or --all: in every namespace')
    .option('-l, --selector <selector>', 'delete the objects of KIND that match this label selector')
    .option('--all', 'delete every object of KIND (within -n, or -A)')
    .option('-f, --filename <file>', "delete the objects in this file, '-' for stdin (repeatable)", collect, [])
    .option('--ignore-not-found', 'an object that does not exist is not an error (exit 0)')
    .addOption(hubOption())
    .action(deleteAction(readObjects));
}

/** `meshfed crds`; added apart from the others so that it keeps its place in the help. */
export function addCrdsCommand(program: Command): void {
  program
    .command('crds')
    .description('print the CustomResourceDefinitions of Mesh and the policy kinds, for a hub that reads them from Kubernetes (meshfed crds | kubectl apply -f -)')
    .action(async () => {
      const { crds } = await import('../../registry.js');
      const { stringify } = await import('yaml');
      process.stdout.write(
        crds()
          .map((c) => stringify(c))
          .join('---\n'),
      );
    });
}

async function explain(o: ExplainFlags): Promise<void> {
  const format = parseFormat(o.output);
  const parts = o.from.split('/');
  if (parts.length !== 3 || parts.some((x) => !x)) throw new MeshfedError('usage', `--from: expected cluster/namespace/workload, got "${o.from}"`);
  if (o.with && o.filename.length === 0) throw new MeshfedError('usage', '--with needs -f FILE');
  const [cluster, namespace, workload] = parts as [string, string, string];
  const body: Record<string, unknown> = { from: { cluster, namespace, workload, ...(o.serviceAccount ? { serviceAccount: o.serviceAccount } : {}) }, to: o.to };
  if (o.method) body.method = o.method.replace(/^\//, '');
  if (o.filename.length > 0) body.with = await readObjects(o.filename);
  const r = await request<ExplainResult>(o.hub, 'hub', 'POST', 'api/v1alpha1/explain', {
    text: JSON.stringify(body),
    contentType: 'application/json',
  });
  if (format === 'json' || format === 'yaml') print(r, format, () => '');
  else {
    const { formatExplain } = await import('../../analysis/explain.js');
    process.stdout.write(formatExplain(r));
  }
}

/** Every object in the files ('-' is stdin), validated; all files or an error naming every problem. */
async function readObjects(files: string[]): Promise<ApiObject[]> {
  if (files.length === 0) throw new MeshfedError('usage', '-f: at least one file is required');
  const all: ApiObject[] = [];
  const problems: InvalidInputError[] = [];
  for (const f of files) {
    let text: string;
    try {
      text = f === '-' ? await readStdin() : await readFile(f, 'utf8');
    } catch (err) {
      throw new MeshfedError('invalid', `cannot read ${f}: ${(err as { code?: string }).code ?? String(err)}`, { cause: err });
    }
    try {
      all.push(...parseAndValidate(text, f === '-' ? 'stdin' : f));
    } catch (err) {
      if (err instanceof InvalidInputError) problems.push(err);
      else throw err;
    }
  }
  if (problems.length > 0) throw new InvalidInputError(problems.flatMap((p) => p.problems));
  if (all.length === 0) throw new MeshfedError('invalid', `no objects in ${files.join(', ')}`);
  return all;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
