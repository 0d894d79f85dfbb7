// Join tokens: how a new agent proves it may join, and how it knows it talks to
// the right hub before it trusts anything (like kubeadm's token plus discovery
// hash, in one string):
//
//   mfj1.<id>.<secret>.<sha256 of a trusted root>[,<sha256 of another root>]
//
// The id finds the token at the hub; the hub stores only a hash of the secret.
// The pins are the SHA-256 fingerprints of the roots in the hub's trust bundle
// when the token was made: the agent accepts the hub's TLS certificate only if
// it chains to one of them.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { MeshfedError } from '../util/errors.js';

const PREFIX = 'mfj1';
const ID = /^[0-9a-f]{16}$/;
const SECRET = /^[A-Za-z0-9_-]{43}$/;
const PIN = /^[0-9a-f]{64}$/;

export interface JoinToken {
  id: string;
  secret: string;
  /** SHA-256 fingerprints (hex) of the roots the hub's certificate may chain to. */
  pins: string[];
}

export function newJoinToken(pins: string[]): JoinToken {
  return { id: randomBytes(8).toString('hex'), secret: randomBytes(32).toString('base64url'), pins };
}

export function formatJoinToken(t: JoinToken): string {
  return `${PREFIX}.${t.id}.${t.secret}.${t.pins.join(',')}`;
}

export class MalformedJoinToken extends MeshfedError {
  constructor(why: string) {
    super('invalid', `join token is malformed (${why}): expected ${PREFIX}.<id>.<secret>.<root sha256>, as printed by meshfed cluster add`, { reason: 'MalformedJoinToken' });
  }
}

/** Parses a token; the error never repeats the token (it is a secret). */
export function parseJoinToken(text: string): JoinToken {
  const parts = text.trim().split('.');
  if (parts.length !== 4) throw new MalformedJoinToken(`${parts.length} dot-separated parts instead of 4`);
  const [prefix, id, secret, pins] = parts as [string, string, string, string];
  if (prefix !== PREFIX) throw new MalformedJoinToken(`it does not start with "${PREFIX}."`);
  if (!ID.test(id)) throw new MalformedJoinToken('the id is not 16 hex digits');
  if (!SECRET.test(secret)) throw new MalformedJoinToken('the secret is not 43 base64url characters');
  const list = pins.split(',');
  if (list.length === 0 || !list.every((p) => PIN.test(p))) throw new MalformedJoinToken('the CA pins are not SHA-256 hex fingerprints');
  return { id, secret, pins: list };
}

/** What the hub stores instead of the secret. */
export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

export function secretMatches(secret: string, storedHash: string): boolean {
  const a = Buffer.from(hashSecret(secret), 'hex');
  const b = Buffer.from(storedHash, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}
