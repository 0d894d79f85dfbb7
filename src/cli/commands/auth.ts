// `meshfed auth can-i VERB KIND [NAME]` (may I?) and `meshfed auth can-i
// --list` (what may I do?), answered by the hub for the caller's credential
// (POST /api/v1alpha1/auth/can-i). Exit 0 yes, 1 no; the reason is printed
// either way (stderr for no), or the whole answer with -o json|yaml.
import type { Command } from 'commander';
import { EXIT, MeshfedError } from '../../util/errors.js';
import { collect, commaList, hubOption, outputOption } from '../flags.js';
import { request } from '../http.js';
import { parseFormat, print, table } from '../output.js';
import type { CanIAnswer, CanIListAnswer } from '../../hub/api-auth.js';
import { addAuthCertCommands } from './auth-cert.js';
import { addAuthTokenCommands } from './auth-token.js';

interface CanIFlags {
  namespace?: string;
  cluster?: string;
  action: string[];
  list?: boolean;
  hub: string;
  output: string;
}

export function addAuthCommands(program: Command): void {
  const auth = program.command('auth').description("the hub API's credentials (token, cert) and what they may do (can-i)");
  addAuthTokenCommands(auth);
  addAuthCertCommands(auth);
  auth
    .command('can-i')
    .description('whether the current credential may do VERB on KIND [NAME] (exit 0 yes, 1 no), or with --list every rule it holds')
    .argument('[verb]', 'read, create, update, delete, watch, or a hub operation (mint-join-token, rotate-root, plan, explain, gc, mint-identity-token)')
    .argument('[kind]', 'kind, plural or short name, or Trust, Audit, Hub, Identity')
    .argument('[name]', 'object name')
    .option('-n, --namespace <ns>', 'namespace')
    .option('--cluster <name>', 'cluster')
    .option('--action <action>', 'a finer action the object would use, e.g. fault-injection (repeatable, comma-separated)', collect, [])
    .option('--list', 'list every rule the credential holds')
    .addOption(hubOption())
    .addOption(outputOption())
    .action(canI);
}

async function canI(verb: string | undefined, kind: string | undefined, name: string | undefined, o: CanIFlags): Promise<void> {
  const format = parseFormat(o.output);
  if (o.list) {
    if (verb !== undefined) throw new MeshfedError('usage', 'can-i --list takes no VERB or KIND');
    const r = await request<CanIListAnswer>(o.hub, 'hub', 'POST', 'api/v1alpha1/auth/can-i', { text: JSON.stringify({ list: true }), contentType: 'application/json' });
    print(r, format, () => listTable(r));
    return;
  }
  if (!verb || !kind) throw new MeshfedError('usage', 'can-i needs VERB and KIND (or --list)');
  const q: Record<string, unknown> = { verb, kind };
  if (name) q.name = name;
  if (o.namespace) q.namespace = o.namespace;
  if (o.cluster) q.cluster = o.cluster;
  const actions = commaList(o.action);
  if (actions.length) q.actions = actions;
  const r = await request<CanIAnswer>(o.hub, 'hub', 'POST', 'api/v1alpha1/auth/can-i', { text: JSON.stringify(q), contentType: 'application/json' });
  if (format === 'json' || format === 'yaml') print(r, format, () => '');
  else if (r.allowed) process.stdout.write(`yes: ${r.reason}\n`);
  else process.stdout.write(`no: ${r.reason}\n`);
  if (!r.allowed) process.exitCode = EXIT.failed;
}

function listTable(r: CanIListAnswer): string {
  const head = `${r.user}${r.groups.length ? ` (groups ${r.groups.join(', ')})` : ''}${r.superuser ? ': in the superuser group, allowed everything' : ''}\n`;
  if (!r.rules.length) return head + (r.superuser ? '' : 'no rules: allowed nothing\n');
  const all = (l: readonly unknown[] | undefined) => (l ? l.map((x) => (typeof x === 'string' ? x : JSON.stringify(x))).join(',') : '*');
  return (
    head +
    table(
      ['VERBS', 'KINDS', 'NAMESPACES', 'CLUSTERS', 'NAMES', 'ACTIONS', 'DESTINATIONS', 'WORKLOADS', 'ROLE', 'BINDING'],
      r.rules.map((x) => [
        x.verbs.join(','),
        x.kinds.join(','),
        all(x.namespaces),
        all(x.clusters),
        all(x.names),
        all(x.actions),
        all(x.destinations),
        all(x.workloads),
        `${x.role}[${x.rule}]`,
        x.binding,
      ]),
    )
  );
}
