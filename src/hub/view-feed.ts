// The hub's view fan-out: what every connected agent receives, built once and
// shared. One store watch serves every agent. Changes are coalesced, filtered
// per scope (the set of namespaces an agent imports; most agents share one) and
// encoded ONCE per scope into ready-made HubMessage bytes; the same Buffers are
// queued to every session of the scope. Nothing here is done per session except
// queueing references to shared bytes.
//
// - Groups: a view (a batch of changes, or a full copy) is sent as one or more
//   messages of at most `chunkBytes` (View.more on all but the last), so a
//   fleet-sized view never needs a fleet-sized message.
// - Full views are built from the store's objects in slices (the event loop keeps
//   serving meanwhile), once per scope, and reused by every agent that joins
//   while it is fresh: a joining agent gets the cached full view plus the change
//   groups flushed since it was built (the log), then live groups.
// - Resume: an agent that says which revision it holds gets only the logged
//   groups after it, when the log reaches back that far; else a full view.
// - Coalescing: the first change after a quiet period goes out at once; later
//   ones wait until `minIntervalMs` after the previous flush (a throttle, not a
//   debounce: an isolated change is not delayed, a burst is batched).
//
// Re-applying a change the agent already has is harmless (a group carries each
// key's latest state), which is what lets a session join at any moment without
// per-session bookkeeping of what it has seen.
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { keyOf, refOf, type ApiObject } from '../api/index.js';
import { encodeHubMessage } from '../channel/protocol.js';
import type { Store, WatchEvent } from '../store/store.js';
import { logger } from '../util/log.js';
import { VIEW_KINDS } from '../registry.js';

const log = logger('hub.views');

/** One view as it goes on the wire: one or more encoded messages, shared by every session that gets it. */
export interface ViewGroup {
  /** Sequence number within its scope (log order). */
  readonly seq: number;
  /** Revision the agent holds after applying it. */
  readonly revision: number;
  readonly full: boolean;
  readonly msgs: readonly Buffer[];
  readonly bytes: number;
  /** Objects (upserts) and deleted keys it carries. */
  readonly objects: number;
}

/** Where the feed delivers: an agent session's outgoing queue. */
export interface ViewSubscriber {
  deliver(group: ViewGroup): void;
}

export interface ViewFeedOptions {
  /** Minimum time between two flushes of changes (coalescing window, ms). */
  minIntervalMs: number;
  /**
   * Largest payload per message (bytes of JSON, approximately). Default 96 KiB:
   * gRPC copies every message it writes or reads into a buffer of its own, and
   * buffers under malloc's mmap threshold (128 KiB) are recycled, where larger
   * ones leave the process's memory fragmented after a fleet-wide fan-out.
   */
  chunkBytes?: number;
  /** Change groups kept per scope for resuming agents (bytes). Default 8 MiB. */
  logBytes?: number;
  /** A cached full view unused for this long is dropped (ms). Default 10 s. */
  fullViewTtlMs?: number;
  /** An advance of the revision that carries nothing for a scope is sent at most this often (ms). Default 1 s. */
  heartbeatMs?: number;
}

export interface ViewFeedStats {
  revision: number;
  scopes: { scope: string; sessions: number; logGroups: number; logBytes: number; fullView?: { revision: number; bytes: number; objects: number } }[];
  fullViewsBuilt: number;
  groupsEncoded: number;
  bytesEncoded: number;
}

interface FullView {
  group: ViewGroup;
  /** Log groups with seq > afterSeq complete it. */
  afterSeq: number;
  usedAt: number;
}

class Scope {
  readonly subs = new Set<ViewSubscriber>();
  log: ViewGroup[] = [];
  logBytes = 0;
  /** Every content group after this revision is in the log. */
  logFrom: number;
  seq = 0;
  full: FullView | undefined;
  building: { waiting: Set<ViewSubscriber>; afterSeq: number } | undefined;
  /** The revision advanced without content for this scope since this time (a heartbeat is owed). */
  owedSince: number | undefined;
  idleSince: number;

  constructor(
    readonly key: string,
    readonly namespaces: ReadonlySet<string> | undefined,
    revision: number,
  ) {
    this.logFrom = revision;
    this.idleSince = Date.now();
  }

  wants(o: ApiObject): boolean {
    if (!VIEW_KINDS.has(o.kind)) return false;
    return this.namespaces === undefined || o.metadata.namespace === undefined || this.namespaces.has(o.metadata.namespace);
  }

  /** Bytes of the log after the full view (what a joiner gets on top of it). */
  logBytesSince(afterSeq: number): number {
    let n = 0;
    for (let i = this.log.length - 1; i >= 0 && this.log[i]!.seq > afterSeq; i--) n += this.log[i]!.bytes;
    return n;
  }
}

export function scopeKey(namespaces: readonly string[] | undefined): string {
  return namespaces?.length ? [...new Set(namespaces)].sort().join(',') : '*';
}

export class ViewFeed {
  private readonly chunkBytes: number;
  private readonly logCap: number;
  private readonly fullTtl: number;
  private readonly heartbeatMs: number;
  private readonly scopes = new Map<string, Scope>();
  private pending = new Map<string, WatchEvent>();
  /** Highest store revision seen. */
  private pendingRevision: number;
  /** Revision of the last flush: every change up to it has been handed to the scopes. */
  private flushedRevision: number;
  private lastFlushAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;
  private readonly housekeeping: NodeJS.Timeout;
  private readonly unwatch: () => void;
  private closed = false;
  private readonly counters = { fullViewsBuilt: 0, groupsEncoded: 0, bytesEncoded: 0 };
  /** Largest full view built so far (bytes): sessions may queue a few times this before they count as stuck. */
  largestFullBytes = 0;

  constructor(
    private readonly store: Store,
    private readonly opts: ViewFeedOptions,
  ) {
    this.chunkBytes = opts.chunkBytes ?? 96 * 1024;
    this.logCap = opts.logBytes ?? 8 * 1024 * 1024;
    this.fullTtl = opts.fullViewTtlMs ?? 10_000;
    this.heartbeatMs = opts.heartbeatMs ?? 1000;
    this.pendingRevision = this.flushedRevision = store.revision();
    this.unwatch = store.watch(this.flushedRevision, (e) => this.onEvent(e));
    this.housekeeping = setInterval(() => this.tidy(), Math.min(1000, this.heartbeatMs));
    this.housekeeping.unref();
  }

  close(): void {
    this.closed = true;
    this.unwatch();
    clearInterval(this.housekeeping);
    if (this.timer) clearTimeout(this.timer);
    if (this.immediate) clearImmediate(this.immediate);
    this.scopes.clear();
  }

  /**
   * Starts delivering to a session: only what changed after `agentRevision`
   * when the log reaches back that far, else a full view first. Everything
   * flushed from now on follows.
   */
  attach(sub: ViewSubscriber, namespaces: readonly string[] | undefined, agentRevision: number): void {
    if (this.closed) return;
    const scope = this.scope(namespaces);
    scope.idleSince = Date.now();
    if (agentRevision > 0 && agentRevision <= this.flushedRevision && agentRevision >= scope.logFrom) {
      let last = agentRevision;
      for (const g of scope.log) {
        if (g.revision > agentRevision) {
          sub.deliver(g);
          last = g.revision;
        }
      }
      this.revisionOnly(sub, last);
      scope.subs.add(sub);
      return;
    }
    if (agentRevision > 0 && agentRevision > this.flushedRevision && agentRevision <= this.store.revision()) {
      // Holds more than was flushed (it saw a revision the flush that is pending will repeat): nothing to catch up.
      scope.subs.add(sub);
      return;
    }
    this.attachFull(scope, sub);
  }

  detach(sub: ViewSubscriber, namespaces: readonly string[] | undefined): void {
    const scope = this.scopes.get(scopeKey(namespaces));
    if (!scope) return;
    scope.subs.delete(sub);
    scope.building?.waiting.delete(sub);
    if (scope.subs.size === 0) scope.idleSince = Date.now();
  }

  stats(): ViewFeedStats {
    return {
      revision: this.flushedRevision,
      scopes: [...this.scopes.values()].map((s) => {
        const out: ViewFeedStats['scopes'][number] = { scope: s.key, sessions: s.subs.size, logGroups: s.log.length, logBytes: s.logBytes };
        if (s.full) out.fullView = { revision: s.full.group.revision, bytes: s.full.group.bytes, objects: s.full.group.objects };
        return out;
      }),
      ...this.counters,
    };
  }

  private scope(namespaces: readonly string[] | undefined): Scope {
    const key = scopeKey(namespaces);
    let s = this.scopes.get(key);
    if (!s) {
      s = new Scope(key, key === '*' ? undefined : new Set(key.split(',')), this.flushedRevision);
      this.scopes.set(key, s);
    }
    return s;
  }

  // --- full views ------------------------------------------------------------

  private attachFull(scope: Scope, sub: ViewSubscriber): void {
    const f = scope.full;
    // Fresh enough: what was flushed since is smaller than the view itself.
    if (f && !scope.building && scope.logBytesSince(f.afterSeq) <= Math.max(f.group.bytes, this.chunkBytes)) {
      f.usedAt = Date.now();
      this.join(scope, sub, f);
      return;
    }
    if (scope.building) {
      scope.building.waiting.add(sub);
      return;
    }
    scope.building = { waiting: new Set([sub]), afterSeq: scope.seq };
    void this.build(scope).catch((err: unknown) => {
      log.error('building a full view failed', { scope: scope.key, error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
      scope.building = undefined;
    });
  }

  private join(scope: Scope, sub: ViewSubscriber, f: FullView): void {
    sub.deliver(f.group);
    let last = f.group.revision;
    for (const g of scope.log) {
      if (g.seq > f.afterSeq) {
        sub.deliver(g);
        last = g.revision;
      }
    }
    this.revisionOnly(sub, last);
    scope.subs.add(sub);
  }

  /**
   * Tells a joining agent the revision it now holds when the last group it got
   * is older (the flushes since carried nothing for its scope): it learns it is
   * caught up without waiting for the next heartbeat. One small message.
   */
  private revisionOnly(sub: ViewSubscriber, last: number): void {
    if (last >= this.flushedRevision) return;
    const m = encodeHubMessage({ view: { revision: String(this.flushedRevision), full: false, upsertsJson: '[]', deletesJson: '[]', more: false } });
    sub.deliver({ seq: 0, revision: this.flushedRevision, full: false, msgs: [m], bytes: m.length, objects: 0 });
  }

  /**
   * The scope's objects at one revision (taken synchronously), serialized in
   * slices that yield to the event loop, then encoded in chunks. Groups flushed
   * meanwhile are logged and follow the full view to whoever joins with it.
   */
  private async build(scope: Scope): Promise<void> {
    const t0 = performance.now();
    const objects: ApiObject[] = [];
    let revision = this.flushedRevision;
    for (const kind of VIEW_KINDS) {
      const r = this.store.scan({ kind });
      revision = r.revision;
      for (const o of r.objects) if (scope.wants(o)) objects.push(o);
    }
    // Changes flushed before this point are in the objects; changes after it
    // arrive as groups with a higher seq (re-applying one already in is harmless).
    const afterSeq = scope.seq;
    scope.building!.afterSeq = afterSeq;
    const payloads: string[] = [];
    let part: string[] = [];
    let size = 0;
    let slice = performance.now();
    for (const o of objects) {
      const json = JSON.stringify(o);
      part.push(json);
      size += json.length + 1;
      if (size >= this.chunkBytes) {
        payloads.push(`[${part.join(',')}]`);
        part = [];
        size = 0;
      }
      if (performance.now() - slice > 8) {
        await yieldToLoop();
        if (this.closed) return;
        slice = performance.now();
      }
    }
    if (part.length > 0 || payloads.length === 0) payloads.push(`[${part.join(',')}]`);
    part = [];
    const msgs: Buffer[] = [];
    let bytes = 0;
    for (let i = 0; i < payloads.length; i++) {
      const m = encodeHubMessage({ view: { revision: String(revision), full: i === 0, upsertsJson: payloads[i]!, deletesJson: '[]', more: i < payloads.length - 1 } });
      payloads[i] = '';
      msgs.push(m);
      bytes += m.length;
      if (performance.now() - slice > 8) {
        await yieldToLoop();
        if (this.closed) return;
        slice = performance.now();
      }
    }
    const group: ViewGroup = { seq: afterSeq, revision, full: true, msgs, bytes, objects: objects.length };
    this.counters.fullViewsBuilt++;
    this.counters.groupsEncoded++;
    this.counters.bytesEncoded += bytes;
    this.largestFullBytes = Math.max(this.largestFullBytes, bytes);
    const full: FullView = { group, afterSeq, usedAt: Date.now() };
    scope.full = full;
    const waiting = scope.building!.waiting;
    scope.building = undefined;
    log.info('full view built', {
      scope: scope.key,
      revision,
      objects: objects.length,
      messages: msgs.length,
      mb: Math.round((bytes / 2 ** 20) * 10) / 10,
      ms: Math.round(performance.now() - t0),
      agents: waiting.size,
    });
    for (const sub of waiting) this.join(scope, sub, full);
  }

  // --- changes ---------------------------------------------------------------

  private onEvent(e: WatchEvent): void {
    if (e.revision > this.pendingRevision) this.pendingRevision = e.revision;
    if (VIEW_KINDS.has(e.object.kind)) this.pending.set(keyOf(refOf(e.object)), e);
    this.schedule();
  }

  private schedule(): void {
    if (this.timer || this.immediate || this.closed) return;
    const wait = this.lastFlushAt + this.opts.minIntervalMs - performance.now();
    // setImmediate: every event of one commit group (published together) is in the same flush.
    if (wait <= 0) this.immediate = setImmediate(() => this.flush());
    else this.timer = setTimeout(() => this.flush(), wait);
  }

  private flush(): void {
    this.timer = undefined;
    this.immediate = undefined;
    if (this.closed) return;
    const revision = this.pendingRevision;
    if (revision === this.flushedRevision && this.pending.size === 0) return;
    this.lastFlushAt = performance.now();
    const events = [...this.pending.values()];
    this.pending = new Map();
    this.flushedRevision = revision;
    const json = new Map<WatchEvent, string>();
    for (const scope of this.scopes.values()) {
      const upserts: string[] = [];
      const deletes: string[] = [];
      for (const e of events) {
        if (!scope.wants(e.object)) continue;
        if (e.type === 'DELETED') deletes.push(keyOf(refOf(e.object)));
        else {
          let j = json.get(e);
          if (j === undefined) json.set(e, (j = JSON.stringify(e.object)));
          upserts.push(j);
        }
      }
      if (upserts.length === 0 && deletes.length === 0) {
        scope.owedSince ??= Date.now();
        continue;
      }
      scope.owedSince = undefined;
      const group = this.encode(scope, revision, upserts, deletes);
      scope.log.push(group);
      scope.logBytes += group.bytes;
      this.trim(scope);
      for (const sub of scope.subs) sub.deliver(group);
    }
  }

  /** A change group in messages of at most chunkBytes of JSON each. */
  private encode(scope: Scope, revision: number, upserts: string[], deletes: string[]): ViewGroup {
    const payloads: { u: string[]; d: string[] }[] = [];
    let cur = { u: [] as string[], d: [] as string[] };
    let size = 0;
    const next = () => {
      payloads.push(cur);
      cur = { u: [], d: [] };
      size = 0;
    };
    for (const j of upserts) {
      if (size > 0 && size + j.length > this.chunkBytes) next();
      cur.u.push(j);
      size += j.length + 1;
    }
    for (const k of deletes) {
      if (size > 0 && size + k.length > this.chunkBytes) next();
      cur.d.push(k);
      size += k.length + 3;
    }
    next();
    const msgs: Buffer[] = [];
    let bytes = 0;
    payloads.forEach((p, i) => {
      const m = encodeHubMessage({
        view: { revision: String(revision), full: false, upsertsJson: `[${p.u.join(',')}]`, deletesJson: JSON.stringify(p.d), more: i < payloads.length - 1 },
      });
      msgs.push(m);
      bytes += m.length;
    });
    this.counters.groupsEncoded++;
    this.counters.bytesEncoded += bytes;
    return { seq: ++scope.seq, revision, full: false, msgs, bytes, objects: upserts.length + deletes.length };
  }

  /**
   * Bounds the log: beyond logCap the oldest groups go, except those a live
   * (or building) full view needs, up to the size of that view. A full view
   * whose follow-up groups are dropped is dropped too.
   */
  private trim(scope: Scope): void {
    const keepAfter = scope.building ? scope.building.afterSeq : scope.full?.afterSeq;
    const cap = keepAfter !== undefined ? Math.max(this.logCap, 2 * (scope.full?.group.bytes ?? this.largestFullBytes)) : this.logCap;
    while (scope.log.length > 0 && scope.logBytes > cap) {
      const g = scope.log.shift()!;
      scope.logBytes -= g.bytes;
      scope.logFrom = g.revision;
      if (scope.full && g.seq > scope.full.afterSeq) scope.full = undefined;
    }
  }

  private tidy(): void {
    const now = Date.now();
    for (const [key, scope] of this.scopes) {
      if (scope.full && !scope.building && now - scope.full.usedAt > this.fullTtl) {
        scope.full = undefined;
        this.trim(scope);
      }
      if (scope.owedSince !== undefined && now - scope.owedSince >= this.heartbeatMs && scope.subs.size > 0) {
        // The revision moved on without anything for this scope: say so (agents
        // show how far behind the hub they are, and resume from there).
        scope.owedSince = undefined;
        const m = encodeHubMessage({ view: { revision: String(this.flushedRevision), full: false, upsertsJson: '[]', deletesJson: '[]', more: false } });
        const g: ViewGroup = { seq: scope.seq, revision: this.flushedRevision, full: false, msgs: [m], bytes: m.length, objects: 0 };
        for (const sub of scope.subs) sub.deliver(g);
      }
      if (scope.subs.size === 0 && !scope.building && now - scope.idleSince > 10 * 60_000) this.scopes.delete(key);
    }
  }
}
