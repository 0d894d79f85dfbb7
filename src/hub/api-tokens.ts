// The hub API's credential answers, apart from HTTP: `meshfed auth token
// create|list|revoke`. Inputs are parsed request bodies; refusals are
// MeshfedErrors the router answers. A token's secret is in the create answer
// only (never stored, never logged).
//
// Escalation guard: a caller outside the superuser group may create tokens
// only for itself and only with groups it holds, so a permission to create
// tokens never grants more than the caller has.
import { DURATION, durationMs } from '../api/duration.js';
import type { ApiTokenInfo, CredentialStore } from '../auth/credentials.js';
import { SUPERUSER_GROUP } from '../auth/authorizer.js';
import type { Principal } from '../auth/types.js';
import { MeshfedError } from '../util/errors.js';
import { logger } from '../util/log.js';

const log = logger('hub.api');

function stringList(v: unknown, field: string): string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string' && x.length > 0)) throw new MeshfedError('invalid', `${field}: a list of strings`);
  return v as string[];
}

/** POST auth/tokens {user, groups?, scope?, ttl?}: a new token (its secret shown once). */
export async function createTokenAnswer(credentials: CredentialStore, caller: Principal, body: Record<string, unknown>): Promise<{ token: string } & ApiTokenInfo> {
  const user = body.user;
  if (typeof user !== 'string' || !user) throw new MeshfedError('invalid', 'user: the user name the token stands for is required');
  const groups = stringList(body.groups, 'groups');
  const scope = stringList(body.scope, 'scope');
  const ttl = body.ttl ?? '24h';
  if (typeof ttl !== 'string' || !new RegExp(DURATION).test(ttl)) throw new MeshfedError('invalid', `ttl: "${String(ttl)}" is not a duration (e.g. 30m, 24h, 30d)`);
  if (!caller.groups.includes(SUPERUSER_GROUP)) {
    if (user !== caller.name) throw new MeshfedError('forbidden', `only group ${SUPERUSER_GROUP} creates tokens for other users (you are ${caller.name})`, { reason: 'Escalation' });
    const extra = groups.filter((g) => !caller.groups.includes(g));
    if (extra.length) throw new MeshfedError('forbidden', `you cannot grant groups you are not in: ${extra.join(', ')}`, { reason: 'Escalation' });
  }
  const t = await credentials.create({ user, groups, scope, ttlMs: durationMs(ttl) });
  log.info('API token created', { id: t.info.id, user, groups, scope, expiresAt: t.info.expiresAt, by: caller.name });
  return { token: t.token, ...t.info };
}

export function listTokensAnswer(credentials: CredentialStore): { items: (ApiTokenInfo & { state: string })[] } {
  const now = Date.now();
  return {
    items: credentials.list().map((t) => ({ ...t, state: t.revokedAt ? 'revoked' : Date.parse(t.expiresAt) <= now ? 'expired' : 'active' })),
  };
}

export async function revokeTokenAnswer(credentials: CredentialStore, caller: Principal, id: string): Promise<ApiTokenInfo> {
  const t = await credentials.revoke(id);
  log.info('API token revoked', { id, user: t.user, by: caller.name });
  return t;
}
