// A token-bucket rate limiter per key (a remote address, a principal): each key
// may spend `burst` tokens at once, refilled at `perSecond`. The map of keys
// is bounded (`maxKeys`): the least recently used key is dropped, so a flood of
// distinct keys costs bounded memory (a dropped key starts again with a full
// bucket: the bound trades precision for memory under such a flood). Pure apart
// from the clock, which is injectable for tests.

export interface RateLimitOptions {
  /** Tokens added per second. */
  perSecond: number;
  /** Bucket size: requests allowed at once. */
  burst: number;
  /** Keys remembered at most. */
  maxKeys?: number;
  now?: () => number;
}

interface Bucket {
  tokens: number;
  at: number;
}

export interface RateDecision {
  allowed: boolean;
  /** When refused: seconds until one token is back. */
  retryAfterSeconds: number;
}

export class RateLimiter {
  // Map iteration order is insertion order: re-inserting on use keeps it LRU.
  private readonly buckets = new Map<string, Bucket>();
  private readonly maxKeys: number;
  private readonly now: () => number;

  constructor(private readonly opts: RateLimitOptions) {
    if (!(opts.perSecond > 0) || !(opts.burst >= 1)) throw new Error('rate limit: perSecond must be > 0 and burst >= 1');
    this.maxKeys = opts.maxKeys ?? 10_000;
    this.now = opts.now ?? Date.now;
  }

  /** Spends one token of `key`: allowed, or refused with the time to wait. */
  take(key: string): RateDecision {
    const now = this.now();
    const b = this.refilled(key, now);
    this.buckets.delete(key);
    this.buckets.set(key, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return { allowed: true, retryAfterSeconds: 0 };
    }
    return { allowed: false, retryAfterSeconds: Math.ceil((1 - b.tokens) / this.opts.perSecond) };
  }

  /** Keys held now (for tests and status). */
  get size(): number {
    return this.buckets.size;
  }

  private refilled(key: string, now: number): Bucket {
    const b = this.buckets.get(key);
    if (!b) {
      this.evict(1);
      return { tokens: this.opts.burst, at: now };
    }
    const elapsed = Math.max(0, now - b.at) / 1000;
    return { tokens: Math.min(this.opts.burst, b.tokens + elapsed * this.opts.perSecond), at: now };
  }

  /** Keeps room for `room` new keys by dropping the least recently used (O(1) each). */
  private evict(room = 0): void {
    for (const k of this.buckets.keys()) {
      if (this.buckets.size + room <= this.maxKeys) return;
      this.buckets.delete(k);
    }
  }
}
