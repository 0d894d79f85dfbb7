// The in-memory replica of an EtcdStore: every object under `<prefix>/objects/`
// as etcd had it at the loaded revision R (a paginated range at R), kept current
// by one etcd watch of `<prefix>/` from R+1. Reads are answered from it; local
// watchers are served from its RevisionHistory (everything since R, up to the
// history limit).
// Invariants: an object's metadata.resourceVersion is its etcd mod revision
// (whatever the stored JSON says); the events of one etcd revision are applied
// together, then published; `rev` is the revision of the last applied object
// change, `seen` the highest etcd revision the watch has reported (also moved by
// the sync keys failed commits touch), and waiters resolve on `seen`.
import type { IKeyValue, IWatchResponse, Watcher } from 'etcd3';
import { Range } from 'etcd3';
import type { ApiObject } from '../../api/meta.js';
import { errorMessage } from '../../util/errors.js';
import { internObject } from '../../util/intern.js';
import type { StoreLogger } from '../file-store.js';
import { RevisionHistory, type HistEvent } from '../history.js';
import { isStorable } from '../shapes.js';
import { kindOfKey, StoreState } from '../state.js';
import type { EtcdConnection, KeyLayout } from './connection.js';

/** Objects fetched per range request while loading (bounded response size). */
const PAGE = 500;

/** An object read from etcd, its resourceVersion set to the key's mod revision. */
export function objectOf(kv: IKeyValue, where: string): ApiObject {
  let o: unknown;
  try {
    o = JSON.parse(kv.value.toString());
  } catch (err) {
    throw new Error(`${where}: key ${kv.key.toString()} is not JSON: ${errorMessage(err)}`);
  }
  if (!isStorable(o)) throw new Error(`${where}: key ${kv.key.toString()} is not a stored object (needs kind and metadata.name)`);
  o.metadata.resourceVersion = kv.mod_revision;
  return internObject(o);
}

interface Waiter {
  rev: number;
  resolve: () => void;
}

export class Replica {
  readonly state = new StoreState();
  readonly history: RevisionHistory;
  /** Highest etcd revision the watch reported (or the loaded one). */
  seen: number;
  /** Why the watch is not connected, if it is not. */
  watchFault: string | undefined;
  private watcher: Watcher | undefined;
  private waiters: Waiter[] = [];

  private constructor(
    private readonly conn: EtcdConnection,
    private readonly keys: KeyLayout,
    rev: number,
    historyLimit: number,
    private readonly logger: StoreLogger,
  ) {
    this.state.rev = rev;
    this.seen = rev;
    this.history = new RevisionHistory(rev, historyLimit, logger);
  }

  /** Loads every object at one revision, then watches from the next. */
  static async load(conn: EtcdConnection, keys: KeyLayout, historyLimit: number, logger: StoreLogger): Promise<Replica> {
    const end = Range.prefix(keys.objects).end;
    let start: Buffer = Buffer.from(keys.objects);
    let rev: number | undefined;
    const objects: [string, ApiObject][] = [];
    for (;;) {
      const b = conn.client.getAll().inRange(new Range(start, end)).limit(PAGE);
      if (rev !== undefined) b.revision(rev);
      const res = await conn.bounded('loading the store', () => b.exec());
      rev ??= Number(res.header.revision);
      for (const kv of res.kvs) objects.push([kv.key.toString().slice(keys.objects.length), objectOf(kv, conn.where)]);
      const last = res.kvs[res.kvs.length - 1];
      if (!res.more || last === undefined) break;
      start = Buffer.concat([last.key, Buffer.from([0])]);
    }
    const r = new Replica(conn, keys, rev, historyLimit, logger);
    for (const [key, o] of objects) r.state.apply(key, { kind: o.kind, obj: o });
    await r.startWatch();
    return r;
  }

  private async startWatch(): Promise<void> {
    const w = await this.conn.bounded('watching the store', () =>
      this.conn.client
        .watch()
        .prefix(this.keys.root)
        .startRevision(String(this.seen + 1))
        .create(),
    );
    this.watcher = w;
    w.on('data', (res) => this.onData(res));
    w.on('disconnected', (err) => {
      this.watchFault = `watch disconnected: ${errorMessage(err)}`;
    });
    w.on('connected', () => {
      this.watchFault = undefined;
    });
    w.on('error', (err) => {
      // Not recoverable (e.g. the revision it resumes from was compacted while disconnected): reopen the store.
      this.watchFault = `watch failed, the replica is no longer current (reopen the store): ${errorMessage(err)}`;
      this.logger.error(`meshfed store: ${this.conn.where}: ${this.watchFault}`);
    });
  }

  /** Resolves once the watch has reported revision `rev` (or later). */
  waitFor(rev: number): Promise<void> {
    if (this.seen >= rev) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ rev, resolve }));
  }

  private onData(res: IWatchResponse): void {
    let group: { rev: number; events: HistEvent[] } | undefined;
    const flush = (): void => {
      if (group === undefined) return;
      this.state.rev = group.rev;
      if (group.events.length > 0) this.history.publish(group.events);
      group = undefined;
    };
    for (const ev of res.events) {
      const rev = Number(ev.kv.mod_revision);
      if (rev > this.seen) this.seen = rev;
      const full = ev.kv.key.toString();
      if (!full.startsWith(this.keys.objects)) continue;
      if (group !== undefined && group.rev !== rev) flush();
      group ??= { rev, events: [] };
      const key = full.slice(this.keys.objects.length);
      const prev = this.state.lookup(key);
      try {
        if (ev.type === 'Put') {
          const obj = objectOf(ev.kv, this.conn.where);
          this.state.apply(key, { kind: obj.kind, obj });
          group.events.push({ type: prev === undefined ? 'ADDED' : 'MODIFIED', revision: rev, json: JSON.stringify(obj) });
        } else if (prev !== undefined) {
          this.state.apply(key, { kind: kindOfKey(key), obj: null });
          // Like Kubernetes, the deleted object carries the revision of its deletion.
          group.events.push({ type: 'DELETED', revision: rev, json: JSON.stringify({ ...prev, metadata: { ...prev.metadata, resourceVersion: String(rev) } }) });
        }
      } catch (err) {
        this.logger.error(`meshfed store: skipped a change the replica cannot read`, err);
      }
    }
    flush();
    const header = Number(res.header.revision);
    if (res.events.length === 0 && header > this.seen) this.seen = header;
    const due = this.waiters.filter((w) => w.rev <= this.seen);
    if (due.length > 0) {
      this.waiters = this.waiters.filter((w) => w.rev > this.seen);
      for (const w of due) w.resolve();
    }
  }

  async close(): Promise<void> {
    this.history.stopAll();
    for (const w of this.waiters) w.resolve();
    this.waiters = [];
    if (this.watcher) await this.conn.bounded('cancelling the watch', () => this.watcher!.cancel()).catch(() => undefined);
  }
}
