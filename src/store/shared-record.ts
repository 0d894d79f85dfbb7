// One value a hub keeps in its store as a single object of an internal kind
// (spec = the value), shared by every hub replica on that store: the trust
// state, the API credentials. Changes are read-modify-write with the store's
// precondition (expect: the resourceVersion read, or 'absent'), retried after
// re-reading on a conflict; changes by another replica arrive by watch.
// Invariants: local changes run one at a time, in call order; `current` only
// moves to a newer resourceVersion (numeric in both stores), never back; a
// change is current only once the store took it; onRemoteChange is called for
// changes this process did not make (its own arrive by watch while its commit
// is in flight, and are held back until the commit answered, then dropped as
// not newer).
import { API_VERSION, type ApiObject } from '../api/meta.js';
import { MeshfedError } from '../util/errors.js';
import { SerialQueue } from '../util/serial.js';
import type { Store, StoreOp, WatchEvent } from './store.js';

/** What an update makes of the value; `ops` are committed with it, atomically, before it. */
export interface Update<T, R> {
  value: T;
  result: R;
  ops?: StoreOp[];
}

export interface SharedRecordOptions<T> {
  store: Store;
  kind: string;
  name: string;
  /** Called after `current` moved to a value another writer (another hub replica) stored. */
  onRemoteChange?: (next: T, prev: T | undefined) => void;
  /** Watch the store itself (default true); false: the owner passes its watch events to observe(). */
  watch?: boolean;
  /** Attempts of one update before the conflict is the caller's (default 32). */
  maxAttempts?: number;
}

export class SharedRecord<T> {
  private value: T | undefined;
  private rv: string | undefined;
  private writing = false;
  /** The newest event seen while a local commit was in flight. */
  private held: ApiObject | undefined;
  private unwatch: (() => void) | undefined;
  private readonly queue = new SerialQueue();

  private constructor(private readonly opts: SharedRecordOptions<T>) {}

  /** Opens the record: the watch first, then the read, so no change falls between them. */
  static async open<T>(opts: SharedRecordOptions<T>): Promise<SharedRecord<T>> {
    const r = SharedRecord.unread(opts);
    await r.refresh();
    return r;
  }

  /** The record before its first read (refresh()): for an owner that starts its own watch (watch: false) in between. */
  static unread<T>(opts: SharedRecordOptions<T>): SharedRecord<T> {
    const r = new SharedRecord(opts);
    if (opts.watch !== false) r.unwatch = opts.store.watch(opts.store.revision(), (e) => r.observe(e));
    return r;
  }

  /** The value as last read or written; undefined until someone stored it. */
  get current(): T | undefined {
    return this.value;
  }

  /** A store event: applied if it is this record's and newer than what is current. */
  observe(e: WatchEvent): void {
    // Nothing deletes the record while hubs run: a DELETED event (an offline tool) leaves the value as it was.
    if (e.type === 'DELETED' || e.object.kind !== this.opts.kind || e.object.metadata.name !== this.opts.name) return;
    if (this.writing) {
      if (this.held === undefined || newer(e.object, this.held.metadata.resourceVersion)) this.held = e.object;
      return;
    }
    this.adopt(e.object);
  }

  /**
   * Runs `fn` on a copy of the current value (undefined: never stored) and
   * commits what it returns with a precondition on the version it read; on a
   * conflict, reads again and runs `fn` again (it must be safe to repeat).
   */
  update<R>(fn: (draft: T | undefined, now: Date) => Update<T, R> | Promise<Update<T, R>>): Promise<R> {
    return this.queue.run(async () => {
      const max = this.opts.maxAttempts ?? 32;
      for (let attempt = 1; ; attempt++) {
        const u = await fn(this.value === undefined ? undefined : structuredClone(this.value), new Date());
        const object: ApiObject = { apiVersion: API_VERSION, kind: this.opts.kind, metadata: { name: this.opts.name }, spec: u.value };
        const expect = this.rv === undefined ? ('absent' as const) : { resourceVersion: this.rv };
        this.writing = true;
        try {
          const res = await this.opts.store.commit([...(u.ops ?? []), { type: 'put', object, expect }]);
          this.value = u.value;
          this.rv = res.results.at(-1)!.object!.metadata.resourceVersion;
          return u.result;
        } catch (err) {
          if (!(err instanceof MeshfedError && err.code === 'conflict') || attempt >= max) throw err;
        } finally {
          this.writing = false;
          const held = this.held;
          this.held = undefined;
          if (held) this.adopt(held);
        }
        await this.refresh();
      }
    });
  }

  close(): void {
    this.unwatch?.();
    this.unwatch = undefined;
  }

  /** Reads the stored value (adopted if newer). */
  async refresh(): Promise<void> {
    const o = await this.opts.store.get({ kind: this.opts.kind, name: this.opts.name });
    if (o) this.adopt(o);
  }

  private adopt(o: ApiObject): void {
    if (this.rv !== undefined && !newer(o, this.rv)) return;
    const prev = this.value;
    this.value = o.spec as T;
    this.rv = o.metadata.resourceVersion;
    this.opts.onRemoteChange?.(this.value, prev);
  }
}

function newer(o: ApiObject, rv: string | undefined): boolean {
  return rv === undefined || Number(o.metadata.resourceVersion) > Number(rv);
}
