// Join tokens at the hub: the checks a token must pass before its agent's CSR
// is signed (known, secret, not revoked, not used, not expired, for this
// cluster), the refusals of a join, and revoking a cluster's pending tokens.
// Pure functions over the trust state; HubTrust (trust.ts) runs them inside
// one persisted change. Refusals are MeshfedErrors: the code gives the gRPC
// status the Join call answers, the reason word names the refusal.
import { secretMatches } from '../channel/join-token.js';
import type { JoinRequest } from '../channel/protocol.js';
import { MeshfedError } from '../util/errors.js';
import type { TokenRecord, TrustState } from './trust-state.js';

/** The token a Join request names, if it may be redeemed now by the cluster the request says it is; else the refusal. */
export function checkJoinToken(tokens: TokenRecord[], req: JoinRequest, now: Date): TokenRecord {
  const id = String(req.tokenId ?? '');
  const rec = tokens.find((t) => t.id === id);
  if (!rec)
    throw new MeshfedError('unauthenticated', `join token ${id || '(empty id)'} is not known to this hub: wrong hub, mistyped, or forgotten a day after it expired or was used`, {
      reason: 'UnknownToken',
    });
  if (!secretMatches(String(req.tokenSecret ?? ''), rec.hash)) throw new MeshfedError('unauthenticated', `join token ${id}: the secret does not match`, { reason: 'BadToken' });
  if (rec.revokedAt) throw new MeshfedError('forbidden', `join token ${id} was revoked at ${rec.revokedAt}: ${rec.revokedReason ?? ''}`, { reason: 'RevokedToken' });
  if (rec.usedAt)
    throw new MeshfedError('forbidden', `join token ${id} was already used at ${rec.usedAt}: join tokens are single-use; create a new one (meshfed cluster add ${rec.cluster})`, {
      reason: 'UsedToken',
    });
  if (Date.parse(rec.expiresAt) <= now.getTime())
    throw new MeshfedError('forbidden', `join token ${id} expired at ${rec.expiresAt}; create a new one (meshfed cluster add ${rec.cluster} --token-ttl ...)`, { reason: 'ExpiredToken' });
  if (req.cluster !== rec.cluster)
    throw new MeshfedError('forbidden', `join token ${id} is for cluster "${rec.cluster}", but the agent says it is cluster "${req.cluster}"`, { reason: 'WrongCluster' });
  return rec;
}

/**
 * The token is good but its Cluster is gone. Was HTTP 412 with gRPC
 * FAILED_PRECONDITION; `conflict` keeps that gRPC code (9), and its HTTP 409 is
 * never served (Join is a gRPC call only).
 */
export function unknownClusterRefusal(cluster: string): MeshfedError {
  return new MeshfedError('conflict', `cluster "${cluster}" is not registered at the hub: create it (meshfed cluster add ${cluster})`, { reason: 'UnknownCluster' });
}

export function csrRefusal(why: string): MeshfedError {
  return new MeshfedError('invalid', `agent CSR refused: ${why}`, { reason: 'CsrRejected' });
}

/** A deleted Cluster: its tokens not yet used stop working. */
export function revokeClusterTokens(draft: TrustState, cluster: string, reason: string, now: Date): void {
  for (const t of draft.tokens) {
    if (t.cluster === cluster && !t.usedAt && !t.revokedAt) {
      t.revokedAt = now.toISOString();
      t.revokedReason = reason;
    }
  }
}
