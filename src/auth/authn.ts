// Authentication of API requests: who is calling, from the credential the
// request carries (today a bearer token from the CredentialStore; a verified
// client certificate later, through the same interface), and the limiter of
// failed attempts per remote address.
//
// Invariants: an authenticator answers a Principal or undefined, never why a
// credential was refused (the API answers one uniform 401 that does not tell
// whether a token id exists); it never logs or returns a secret.
import type { IncomingMessage } from 'node:http';
import type { Principal } from './types.js';
import type { CredentialStore } from './credentials.js';

export interface Authenticator {
  authenticate(req: IncomingMessage): Principal | undefined | Promise<Principal | undefined>;
}

/** The one 401 message: it never says which check failed. */
export const UNAUTHENTICATED_MESSAGE =
  'no valid credential: send "Authorization: Bearer <token>" or a hub-issued client certificate (meshfed auth token create / auth cert create, or the admin config the hub wrote at first start)';

/** The token of an `Authorization: Bearer <token>` header. */
export function bearerToken(req: IncomingMessage): string | undefined {
  const h = req.headers.authorization;
  if (typeof h !== 'string') return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
  return m?.[1];
}

/** Bearer tokens of the hub's CredentialStore. */
export class TokenAuthenticator implements Authenticator {
  constructor(private readonly credentials: CredentialStore) {}

  authenticate(req: IncomingMessage): Principal | undefined {
    const token = bearerToken(req);
    if (!token) return undefined;
    const rec = this.credentials.verify(token);
    if (!rec) return undefined;
    const p: Principal = { kind: 'user', name: rec.user, groups: [...rec.groups], via: 'token', credentialId: rec.id };
    if (rec.scope) p.scope = [...rec.scope];
    return p;
  }
}

/**
 * Failed authentications per remote address in a sliding window: after
 * `maxFailures` in `windowMs` the address is refused (429) until the window
 * has moved past them. Bounded: at most `maxAddresses` addresses are tracked
 * (the oldest forgotten first).
 */
export class FailureLimiter {
  private readonly failures = new Map<string, number[]>();

  constructor(
    readonly maxFailures = 20,
    readonly windowMs = 60_000,
    private readonly maxAddresses = 10_000,
  ) {}

  /** Milliseconds until the address may try again, or 0 when it may now. */
  retryAfterMs(address: string, now = Date.now()): number {
    const list = this.recent(address, now);
    if (list.length < this.maxFailures) return 0;
    return Math.max(1, list[list.length - this.maxFailures]! + this.windowMs - now);
  }

  fail(address: string, now = Date.now()): void {
    const list = this.recent(address, now);
    list.push(now);
    this.failures.delete(address);
    this.failures.set(address, list);
    if (this.failures.size > this.maxAddresses) this.failures.delete(this.failures.keys().next().value!);
  }

  private recent(address: string, now: number): number[] {
    const list = (this.failures.get(address) ?? []).filter((t) => now - t < this.windowMs);
    if (list.length) this.failures.set(address, list);
    else this.failures.delete(address);
    return list;
  }
}
