// Incremental (delta) stream (DeltaAggregatedResources), after the xDS protocol's
// "Incremental xDS" section. Per type the stream keeps the explicitly subscribed
// names, the wildcard flag and `known`: name -> version the client holds as far
// as we know. A response carries only resources whose version differs from
// `known` (or that the client asked for again) and removed_resources for names
// it holds that are gone.
//
// - Subscribe/unsubscribe by resource_names_subscribe/_unsubscribe; '*' is the
//   wildcard, and so (legacy) is a first LDS/CDS request naming nothing.
// - initial_resource_versions (first request of a type, after a reconnect) seeds
//   `known`: what the client already has at the current version is not resent.
// - A name subscribed again is sent again (the client may have dropped it); a
//   subscribed name that does not exist is answered in removed_resources.
// - Unsubscribing needs no answer, except for a name also covered by the
//   wildcard: then it is resent (in the wildcard) or removed (not in it).
// - ACK/NACK by response_nonce + error_detail; several responses may be in
//   flight, each answered once. A stale nonce never blocks subscription changes.
//   A NACKed version counts as known: not resent, the next change is.
import { FULL_STATE_TYPES, KNOWN_TYPES, XdsStream, type ErrorDetail, type NodeMessage, type ProxyTypeStatus, type TypeStateBase } from './streams.js';
import type { SnapshotEntry } from '../cache/snapshot.js';
import { deltaResponse } from '../wire.js';

export interface DeltaDiscoveryRequest {
  node: NodeMessage | null;
  type_url: string;
  resource_names_subscribe: string[];
  resource_names_unsubscribe: string[];
  initial_resource_versions: Record<string, string> | null;
  response_nonce: string;
  error_detail: ErrorDetail | null;
}

interface DeltaTypeState extends TypeStateBase {
  /** name -> version the client holds (what we sent, or what it told us on reconnect). */
  known: Map<string, string>;
  /** Names to send even if `known` says the client has them (subscribed again, wildcard exception). */
  forced: Set<string>;
  /** Evaluate everything the client may want: first request, new wildcard, or too much queued while blocked. */
  full: boolean;
  /** Wildcard: per commit, the changed names of this type (shared lists). */
  dirtyLists: (readonly string[])[];
  /** Responses not answered yet: nonce -> system version. */
  inFlight: Map<string, string>;
  removedInLast: number;
}

/** Beyond this many queued commit lists a blocked wildcard stream is re-evaluated in full instead. */
const MAX_DIRTY_LISTS = 64;
/** Unanswered responses remembered per type (a client that never answers must not grow memory). */
const MAX_IN_FLIGHT = 256;

export class DeltaStream extends XdsStream<DeltaTypeState> {
  readonly protocol = 'delta';

  handle(raw: unknown): void {
    // proto-loader decoded it with the schema; the interface above mirrors that shape.
    const req = raw as DeltaDiscoveryRequest;
    this.recordNode(req.node);
    const typeUrl = req.type_url;
    if (!KNOWN_TYPES.has(typeUrl)) {
      this.host.log(`stream ${this.id}: ignoring delta request for unsupported type ${typeUrl}`);
      return;
    }
    let st = this.types.get(typeUrl);
    const first = !st;
    const initial = req.initial_resource_versions ?? {};
    if (!st) {
      st = {
        stream: this,
        typeUrl,
        names: new Set(),
        wildcard: false,
        dirty: new Set(),
        mustRespond: true,
        sentResources: 0,
        known: new Map(Object.entries(initial)),
        forced: new Set(),
        full: true,
        dirtyLists: [],
        inFlight: new Map(),
        removedInLast: 0,
      };
      this.types.set(typeUrl, st);
    }
    if (req.response_nonce) {
      const version = st.inFlight.get(req.response_nonce);
      // An unknown nonce (older than we remember, or from another stream) acknowledges nothing.
      if (version !== undefined) {
        st.inFlight.delete(req.response_nonce);
        this.recordAck(st, version, req.error_detail);
      }
    }
    const subscribe = req.resource_names_subscribe;
    const unsubscribe = req.resource_names_unsubscribe;
    if (first && subscribe.length === 0 && unsubscribe.length === 0 && FULL_STATE_TYPES.has(typeUrl)) this.setWildcard(st, true);
    for (const n of subscribe) {
      if (n === '*') {
        if (!st.wildcard) this.setWildcard(st, true);
        continue;
      }
      if (!st.names.has(n)) {
        st.names.add(n);
        this.host.cache.subscribe(st, n);
      }
      // On a reconnect, what the client listed with its version is sent only if it changed.
      if (!(first && Object.hasOwn(initial, n))) st.forced.add(n);
    }
    for (const n of unsubscribe) {
      if (n === '*') {
        if (st.wildcard) {
          this.setWildcard(st, false);
          // The client drops what it got through the wildcard itself.
          for (const k of [...st.known.keys()]) if (!st.names.has(k)) st.known.delete(k);
        }
        continue;
      }
      if (!st.names.delete(n)) continue; // phantom unsubscription: ignored
      this.host.cache.unsubscribe(st, n);
      if (st.wildcard) {
        // The client cannot tell whether the wildcard still covers it: resend or remove it.
        st.forced.add(n);
      } else {
        st.known.delete(n);
        st.forced.delete(n);
      }
    }
    this.flushType(st);
  }

  private setWildcard(st: DeltaTypeState, on: boolean): void {
    st.wildcard = on;
    this.host.cache.setWildcard(st, on);
    if (on) {
      st.full = true;
      st.mustRespond = true;
    }
  }

  notifyWildcard(st: DeltaTypeState, names: readonly string[]): void {
    if (st.full) return;
    if (st.dirtyLists.length >= MAX_DIRTY_LISTS) {
      st.full = true;
      st.dirtyLists = [];
      return;
    }
    st.dirtyLists.push(names);
  }

  protected hasWork(st: DeltaTypeState): boolean {
    return st.mustRespond || st.full || st.dirty.size > 0 || st.dirtyLists.length > 0 || st.forced.size > 0;
  }

  protected flushType(st: DeltaTypeState): void {
    const host = this.host;
    const cache = host.cache;
    if (!cache.ready || this.closed || this.blocked) return; // the work stays marked: ready / 'drain' flushes it
    const typeUrl = st.typeUrl;
    const resources: SnapshotEntry[] = [];
    const removed: string[] = [];
    // Idempotent per name: a second evaluation in the same flush finds `known` up to date.
    const evaluate = (name: string): void => {
      const forced = st.forced.delete(name);
      const interested = st.names.has(name) || (st.wildcard && !cache.isServerListener(typeUrl, name));
      if (!interested) {
        if (forced) removed.push(name);
        st.known.delete(name);
        return;
      }
      const e = cache.resolve(typeUrl, name);
      const had = st.known.get(name);
      if (e) {
        if (forced || had !== e.version) {
          resources.push(e);
          st.known.set(name, e.version);
        }
      } else if (had !== undefined || forced) {
        removed.push(name);
        st.known.delete(name);
      }
    };
    if (st.full) {
      st.full = false;
      st.dirty.clear();
      st.dirtyLists = [];
      for (const n of st.names) evaluate(n);
      if (st.wildcard) for (const n of cache.names(typeUrl)) evaluate(n);
      for (const n of [...st.known.keys()]) evaluate(n);
    } else {
      for (const n of st.dirty) evaluate(n);
      st.dirty.clear();
      for (const list of st.dirtyLists) for (const n of list) evaluate(n);
      st.dirtyLists = [];
    }
    for (const n of [...st.forced]) evaluate(n);
    if (resources.length === 0 && removed.length === 0 && !st.mustRespond) return;
    st.mustRespond = false;
    const nonce = host.nextNonce(this.id);
    const version = cache.typeVersion(typeUrl);
    const buf = deltaResponse(version, typeUrl, nonce, resources, removed);
    st.inFlight.set(nonce, version);
    if (st.inFlight.size > MAX_IN_FLIGHT) st.inFlight.delete(st.inFlight.keys().next().value!);
    st.removedInLast = removed.length;
    this.recordSend(st, version, nonce, resources.length, removed.length);
    this.write(buf);
  }

  protected override typeStatus(st: DeltaTypeState): ProxyTypeStatus {
    return { ...super.typeStatus(st), removedResources: st.removedInLast, knownResources: st.known.size };
  }
}
