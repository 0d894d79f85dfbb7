// Authentication and authorization of the agent's local API. Who may register
// workloads and mint identity tokens for a namespace and service account.
//
// AgentAuthenticator is the seam: today's implementation is bearer tokens of
// the agent's own CredentialStore (in a FileStore at <data dir>/auth): an agent admin token
// created at first start and written to <data dir>/agent-admin.token (0600,
// never logged), plus per-namespace tokens the admin mints. In Kubernetes
// mode an implementation will check a Pod's projected ServiceAccount token
// with TokenReview (as Istio does) and answer a Principal naming the
// namespace and service account; the rules below stay as they are.
//
// Rules: group meshfed:agent-admins may do everything; a namespace token
// (group meshfed:namespace:<ns>) may register and mint identity tokens in its
// namespace only (and, if its scope lists service accounts, for those only);
// any authenticated caller may read (status, services, proxies, bootstrap).
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { FileStore } from '../store/file-store.js';
import type { Store } from '../store/store.js';
import { writeFileDurable } from '../util/files.js';
import { logger } from '../util/log.js';
import { TokenAuthenticator } from './authn.js';
import { describePermission } from './authorizer.js';
import { CredentialStore } from './credentials.js';
import type { Decision, Permission, Principal } from './types.js';

const log = logger('agent.auth');

export const AGENT_ADMINS = 'meshfed:agent-admins';
const ADMIN_TTL_MS = 365 * 86_400_000;

export function namespaceGroup(ns: string): string {
  return `meshfed:namespace:${ns}`;
}

export interface AgentAuthenticator {
  authenticate(req: IncomingMessage): Principal | undefined | Promise<Principal | undefined>;
}

/** The agent's tokens: an admin token at first start, namespace tokens on request. */
export class AgentTokens implements AgentAuthenticator {
  private readonly authn: TokenAuthenticator;

  private constructor(
    readonly credentials: CredentialStore,
    private readonly store: Store,
  ) {
    this.authn = new TokenAuthenticator(credentials);
  }

  static async open(dataDir: string, cluster: string): Promise<AgentTokens> {
    const records = await FileStore.open(join(dataDir, 'auth'));
    const { store, created } = await CredentialStore.open(records).catch(async (err: unknown) => {
      await records.close();
      throw err;
    });
    const t = new AgentTokens(store, records);
    if (created) {
      const { token, info } = await store.create({ user: `agent-admin.${cluster}`, groups: [AGENT_ADMINS], ttlMs: ADMIN_TTL_MS });
      const file = join(dataDir, 'agent-admin.token');
      await writeFileDurable(file, token + '\n', 0o600);
      log.info('wrote the agent admin token (MESHFED_AGENT_TOKEN=$(cat <file>) meshfed ...); it is shown nowhere else', { file, tokenId: info.id, expiresAt: info.expiresAt });
    }
    return t;
  }

  authenticate(req: IncomingMessage): Principal | undefined {
    return this.authn.authenticate(req);
  }

  async close(): Promise<void> {
    this.credentials.close();
    await this.store.close();
  }

  /** A token for one namespace (optionally some service accounts: scope entries "sa:<name>"). */
  async mintNamespaceToken(namespace: string, serviceAccounts: string[], ttlMs: number): Promise<{ token: string; id: string; expiresAt: string }> {
    const t = await this.credentials.create({
      user: `namespace.${namespace}`,
      groups: [namespaceGroup(namespace)],
      ...(serviceAccounts.length ? { scope: serviceAccounts.map((s) => `sa:${s}`) } : {}),
      ttlMs,
    });
    log.info('namespace token created', { id: t.info.id, namespace, serviceAccounts, expiresAt: t.info.expiresAt });
    return { token: t.token, id: t.info.id, expiresAt: t.info.expiresAt };
  }
}

/** May this caller do this at the agent? (The rules in the header.) */
export function agentAuthorize(p: Principal, perm: Permission): Decision {
  if (p.groups.includes(AGENT_ADMINS)) return { allowed: true, reason: `${p.name} is in group ${AGENT_ADMINS}` };
  if (perm.verb === 'read' && !perm.namespace) return { allowed: true, reason: 'any authenticated caller may read' };
  const denied = (why: string): Decision => ({ allowed: false, reason: `${p.kind}:${p.name} may not ${describePermission(perm)}: ${why}` });
  if (!perm.namespace) return denied(`only group ${AGENT_ADMINS}`);
  if (!p.groups.includes(namespaceGroup(perm.namespace))) return denied(`the credential is not for namespace ${perm.namespace}`);
  const sas = (p.scope ?? []).filter((s) => s.startsWith('sa:')).map((s) => s.slice(3));
  if (perm.verb === 'mint-identity-token' && sas.length && !sas.includes(perm.name ?? '')) return denied(`the credential is for service accounts ${sas.join(', ')} only`);
  return { allowed: true, reason: `a token of namespace ${perm.namespace}` };
}
