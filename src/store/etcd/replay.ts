// Watches from before the replica's history: replayed from etcd's own history
// (an etcd watch from the revision asked for), then live, straight from etcd.
// And the compaction floor: the oldest revision etcd still has, found by
// probing ranges at past revisions (etcd answers a range before its compaction
// revision with "required revision has been compacted").
// Invariants: a replay watcher delivers each change after its starting revision
// once, in revision order, with the same event shapes as the replica (ADDED on
// the key's first version, DELETED carrying the deleted object at the revision
// of its deletion); its listener's throws are logged, not propagated.
import type { Watcher } from 'etcd3';
import { errorMessage } from '../../util/errors.js';
import type { StoreLogger } from '../file-store.js';
import type { WatchEvent } from '../store.js';
import { isCompactedError, type EtcdConnection, type KeyLayout } from './connection.js';
import { objectOf } from './replica.js';

/**
 * The smallest revision etcd can still answer a range at (1 if never compacted),
 * by binary search between 1 and `current`: about log2(current) small ranges.
 */
export async function compactionFloor(conn: EtcdConnection, keys: KeyLayout, current: number): Promise<number> {
  const answers = async (rev: number): Promise<boolean> => {
    try {
      await conn.bounded('probing compaction', () => conn.client.get(keys.sync).revision(rev).exec());
      return true;
    } catch (err) {
      if (isCompactedError(err)) return false;
      throw err;
    }
  };
  if (current <= 1 || (await answers(1))) return 1;
  let lo = 1; // does not answer
  let hi = current; // answers (the current revision always does)
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (await answers(mid)) hi = mid;
    else lo = mid;
  }
  return hi;
}

/**
 * Streams every change under the objects prefix after `fromRevision` from etcd.
 * `onCompacted` is called if etcd has compacted that history meanwhile (the
 * watch then ends). Returns a function that stops it.
 */
export function replayFromEtcd(conn: EtcdConnection, keys: KeyLayout, fromRevision: number, onEvent: (e: WatchEvent) => void, onCompacted: (err: unknown) => void, logger: StoreLogger): () => void {
  let stopped = false;
  let watcher: Watcher | undefined;
  const deliver = (e: WatchEvent): void => {
    if (stopped) return;
    try {
      onEvent(e);
    } catch (err) {
      logger.error(`meshfed store: watch listener threw on ${e.type} at revision ${e.revision}`, err);
    }
  };
  void conn.client
    .watch()
    .prefix(keys.objects)
    .withPreviousKV()
    .startRevision(String(fromRevision + 1))
    .create()
    .then((w) => {
      watcher = w;
      if (stopped) void w.cancel();
      w.on('data', (res) => {
        for (const ev of res.events) {
          const revision = Number(ev.kv.mod_revision);
          try {
            if (ev.type === 'Put') {
              deliver({ type: ev.kv.create_revision === ev.kv.mod_revision ? 'ADDED' : 'MODIFIED', object: objectOf(ev.kv, conn.where), revision });
            } else if (ev.prev_kv) {
              const gone = objectOf(ev.prev_kv, conn.where);
              gone.metadata.resourceVersion = String(revision);
              deliver({ type: 'DELETED', object: gone, revision });
            }
          } catch (err) {
            logger.error('meshfed store: skipped a change the watch cannot read', err);
          }
        }
      });
      w.on('error', (err) => {
        if (stopped) return;
        stopped = true;
        if (isCompactedError(err)) onCompacted(err);
        else logger.error(`meshfed store: ${conn.where}: watch from revision ${fromRevision} failed: ${errorMessage(err)}`);
      });
    })
    .catch((err: unknown) => logger.error(`meshfed store: ${conn.where}: watch from revision ${fromRevision} could not start`, err));
  return () => {
    stopped = true;
    if (watcher) void watcher.cancel().catch(() => undefined);
  };
}
