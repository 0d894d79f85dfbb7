// The etcd connection of an EtcdStore: endpoints, the client, the key layout
// under the store's prefix, and the deadline every etcd call is bounded by.
// Invariant: no call made through `bounded` outlives its deadline; a call that
// fails or times out becomes a MeshfedError 'unavailable' naming etcd, the
// endpoints and the cause (etcd3's own retries run inside that deadline).
import { circuitBreaker, ConsecutiveBreaker, ExponentialBackoff, handleWhen } from 'cockatiel';
import { Etcd3, isRecoverableError } from 'etcd3';
import { errorMessage, MeshfedError } from '../../util/errors.js';

/** How the store's keys are laid out under its prefix. */
export interface KeyLayout {
  /** `<prefix>/`: everything the store owns (watched as one range, so revisions arrive in order). */
  root: string;
  /** `<prefix>/objects/`: one key per object, `<objects><keyOf(ref)>`. */
  objects: string;
  /** `<prefix>/sync/`: a key a failed transaction touches, so the replica can tell when it has caught up. */
  sync: string;
}

export function keyLayout(prefix: string): KeyLayout {
  const p = prefix.replace(/\/+$/, '');
  return { root: `${p}/`, objects: `${p}/objects/`, sync: `${p}/sync/` };
}

/** `host:port`, `http://host:port` -> `http://host:port` (TLS to etcd is not supported yet). */
export function normalizeEndpoints(endpoints: string[]): string[] {
  if (endpoints.length === 0) throw new MeshfedError('usage', 'etcd store: no endpoints (give host:port[,host:port...])');
  return endpoints.map((e) => {
    const t = e.trim();
    if (t.startsWith('https://')) throw new MeshfedError('usage', `etcd endpoint ${t}: TLS to etcd is not supported yet; use http://`);
    const hostPort = t.replace(/^(http|etcd):\/\//, '');
    if (!/^[^/\s:]+:\d+$/.test(hostPort) && !/^\[[0-9a-fA-F:]+\]:\d+$/.test(hostPort)) {
      throw new MeshfedError('usage', `etcd endpoint "${e}" is not host:port`);
    }
    return `http://${hostPort}`;
  });
}

export class EtcdConnection {
  readonly client: Etcd3;

  constructor(
    readonly endpoints: string[],
    /** Deadline of every etcd call, ms. */
    readonly timeoutMs: number,
  ) {
    this.client = new Etcd3({
      hosts: endpoints,
      dialTimeout: timeoutMs,
      // etcd3's defaults are for clients that can wait: a watch redialled after up to 30 s (the hub's copy of
      // the store stale that long after an etcd member or a network blip), a member shunned for 5 s after
      // three failures (writes refused for seconds after etcd's quorum is back). A hub catches up in a second.
      faultHandling: {
        host: () => circuitBreaker(handleWhen(isRecoverableError), { halfOpenAfter: 1000, breaker: new ConsecutiveBreaker(3) }),
        watchBackoff: new ExponentialBackoff({ initialDelay: 100, maxDelay: 1000 }).next(),
      },
      // The gRPC deadline, so a call is cancelled at etcd too; `bounded` is the hard bound.
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeoutMs }),
    });
  }

  /** What the store's errors call etcd. */
  get where(): string {
    return `etcd at ${this.endpoints.join(',')}`;
  }

  /** The error of a failed or timed-out call. */
  unavailableError(what: string, cause: unknown): MeshfedError {
    const msg = errorMessage(cause);
    // etcd refusing the request itself (not being down): a commit over etcd's --max-txn-ops or --max-request-bytes.
    if (/too many operations in txn|request is too large|INVALID_ARGUMENT/.test(msg)) {
      return new MeshfedError('too-large', `${this.where}: ${what} refused: ${msg} (raise etcd's --max-txn-ops / --max-request-bytes)`, { cause });
    }
    return new MeshfedError('unavailable', `${this.where}: ${what} failed (no quorum or unreachable): ${errorMessage(cause)}`, { cause });
  }

  /** Runs `call` with the deadline; its failure or timeout rejects with an 'unavailable' error. */
  async bounded<T>(what: string, call: () => Promise<T>, timeoutMs = this.timeoutMs): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      return await Promise.race([call(), deadline]);
    } catch (err) {
      throw this.unavailableError(what, err);
    } finally {
      clearTimeout(timer);
    }
  }

  close(): void {
    this.client.close();
  }
}

/** Whether an etcd error says the revision asked for is compacted. */
export function isCompactedError(err: unknown): boolean {
  return /compacted/i.test(errorMessage(err));
}
