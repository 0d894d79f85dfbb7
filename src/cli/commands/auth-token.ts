// `meshfed auth token create|list|revoke`: the hub API's bearer tokens
// (POST/GET/DELETE /api/v1alpha1/auth/tokens). `create` prints only the token
// on stdout (`> alice.token` captures it); what it is goes to stderr.
import type { Command } from 'commander';
import { collect, commaList, durationFlag, hubOption, outputOption } from '../flags.js';
import { request } from '../http.js';
import { age, parseFormat, print, table } from '../output.js';
import type { ApiTokenRecord } from '../../auth/credentials.js';

/** A token as the hub lists it: its record without the hash, and its state. */
type TokenInfo = Omit<ApiTokenRecord, 'hash'> & { state?: string };

/** `meshfed auth token ...`, under the `auth` group (commands/auth.ts). */
export function addAuthTokenCommands(auth: Command): void {
  const token = auth.command('token').description('bearer tokens for the hub API');
  token
    .command('create <user>')
    .description('a token for a user (printed once; the hub keeps only a hash)')
    .option('--group <group>', 'a group the token carries (repeatable; meshfed:admins is the superuser group)', collect, [])
    .option('--scope <verb[:kind]>', 'only for these verbs/kinds (repeatable), e.g. read, create:TrafficPolicy', collect, [])
    .option('--ttl <duration>', 'lifetime (e.g. 1h, 24h, 30d)', '24h')
    .addOption(hubOption())
    .action(async (user: string, o: { group: string[]; scope: string[]; ttl: string; hub?: string }) => {
      durationFlag(o.ttl, '--ttl');
      const body = { user, groups: commaList(o.group), scope: commaList(o.scope), ttl: o.ttl };
      const r = await request<TokenInfo & { token: string }>(o.hub, 'hub', 'POST', 'api/v1alpha1/auth/tokens', { text: JSON.stringify(body), contentType: 'application/json' });
      process.stderr.write(`token ${r.id} for ${r.user}${r.groups.length ? ` (groups ${r.groups.join(', ')})` : ''}, expires ${r.expiresAt}\n`);
      process.stdout.write(`${r.token}\n`);
    });
  token
    .command('list')
    .description('tokens (ids, users, groups, expiry; never secrets)')
    .addOption(hubOption())
    .addOption(outputOption())
    .action(async (o: { hub?: string; output: string }) => {
      const format = parseFormat(o.output);
      const r = await request<{ items: TokenInfo[] }>(o.hub, 'hub', 'GET', 'api/v1alpha1/auth/tokens');
      print(r, format, () =>
        table(
          ['ID', 'USER', 'GROUPS', 'SCOPE', 'STATE', 'AGE', 'EXPIRES'],
          r.items.map((t) => [t.id, t.user, t.groups.join(',') || '-', t.scope?.join(',') ?? '-', t.state ?? '-', age(t.createdAt), t.expiresAt]),
        ),
      );
    });
  token
    .command('revoke <id>')
    .description('revoke a token (at once: its next request answers 401)')
    .addOption(hubOption())
    .action(async (id: string, o: { hub?: string }) => {
      const r = await request<TokenInfo>(o.hub, 'hub', 'DELETE', `api/v1alpha1/auth/tokens/${encodeURIComponent(id)}`);
      process.stderr.write(`token ${r.id} of ${r.user} revoked\n`);
    });
}
