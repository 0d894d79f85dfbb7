// State-of-the-world stream (StreamAggregatedResources). Per type the stream keeps
// the names it subscribed to and what it last sent; it answers every change of
// its name set and pushes when a subscribed resource changed.
//
// Rules from the protocol and from grpc-js-xds (docs: xds-field-notes.md):
// - Listener/Cluster responses carry every subscribed resource (missing = deleted);
//   RouteConfiguration/ClusterLoadAssignment pushes carry only the changed ones
//   (allowed by the protocol, and what keeps an endpoint change cheap for a
//   client subscribed to many assignments);
// - an empty LDS/CDS list (or '*') from a client that never named anything is a
//   wildcard (Envoy); once named, an empty list means "none";
// - a request carrying a nonce other than the last one sent is stale and ignored;
//   error_detail on the current nonce is a NACK, recorded once per nonce. What
//   was NACKed counts as sent: the same content is not sent again, the next
//   change is.
import { FULL_STATE_TYPES, KNOWN_TYPES, XdsStream, type ErrorDetail, type NodeMessage, type TypeStateBase } from './streams.js';
import { sotwResponse } from '../wire.js';

export interface DiscoveryRequest {
  version_info: string;
  node: NodeMessage | null;
  resource_names: string[];
  type_url: string;
  response_nonce: string;
  error_detail: ErrorDetail | null;
}

interface SotwTypeState extends TypeStateBase {
  /** The client named resources at least once: a later empty list is not a wildcard. */
  everNamed: boolean;
  /** name -> version of what the client last got, for explicitly named resources (wildcard ones go by notifications). */
  sent: Map<string, string>;
  /** Some resource of a wildcard subscription changed since the last flush. */
  wildcardChanged: boolean;
  /** The client answered (ACK or NACK) the last response sent (a flag, not its nonce: nothing new to keep per ACK). */
  answered: boolean;
  /** resource_names of the last request: a request repeating them changes nothing. */
  lastRequested?: readonly string[];
}

export class SotwStream extends XdsStream<SotwTypeState> {
  readonly protocol = 'sotw';

  handle(raw: unknown): void {
    // proto-loader decoded it with the schema; the interface above mirrors that shape.
    const req = raw as DiscoveryRequest;
    this.recordNode(req.node);
    const typeUrl = req.type_url;
    if (!KNOWN_TYPES.has(typeUrl)) {
      this.host.log(`stream ${this.id}: ignoring request for unsupported type ${typeUrl}`);
      return;
    }
    let st = this.types.get(typeUrl);
    if (req.response_nonce && st?.lastSentNonce !== undefined) {
      // A request answering an older response is stale: the client will answer the newer one.
      // (A nonce we never sent on this stream, e.g. from before a reconnect, counts as a first request.)
      if (req.response_nonce !== st.lastSentNonce) return;
      // grpc-js repeats the nonce (and error_detail) on later requests that only change
      // names: record each response's ACK or NACK once.
      if (!st.answered) {
        st.answered = true;
        const nack = req.error_detail && (req.error_detail.code !== 0 || req.error_detail.message);
        // The version string we sent when the client echoes it (one shared string, not one per ACK).
        const version = req.version_info === st.lastSentVersion ? st.lastSentVersion : req.version_info;
        this.recordAck(st, nack ? (st.lastSentVersion ?? '') : version, req.error_detail);
      }
    }
    if (!st) {
      st = {
        stream: this,
        typeUrl,
        names: new Set(),
        wildcard: false,
        dirty: new Set(),
        mustRespond: true,
        sentResources: 0,
        everNamed: false,
        sent: new Map(),
        wildcardChanged: false,
        answered: false,
      };
      this.types.set(typeUrl, st);
    }
    const wildcard = FULL_STATE_TYPES.has(typeUrl) && (req.resource_names.includes('*') || (req.resource_names.length === 0 && !st.everNamed));
    if (wildcard === st.wildcard && st.lastRequested !== undefined && sameList(req.resource_names, st.lastRequested)) {
      // The common case, an ACK: the same list as the last request, so the same subscription.
      this.flushType(st);
      return;
    }
    st.lastRequested = req.resource_names;
    const requested = req.resource_names.filter((n) => n !== '*');
    if (requested.length > 0) st.everNamed = true;
    const names = new Set(requested);
    let changed = wildcard !== st.wildcard;
    for (const n of st.names) {
      if (!names.has(n)) {
        this.host.cache.unsubscribe(st, n);
        st.sent.delete(n);
        changed = true;
      }
    }
    for (const n of names) {
      if (!st.names.has(n)) {
        this.host.cache.subscribe(st, n);
        changed = true;
      }
    }
    if (wildcard !== st.wildcard) this.host.cache.setWildcard(st, wildcard);
    st.names = names;
    st.wildcard = wildcard;
    if (changed) st.mustRespond = true;
    this.flushType(st);
  }

  notifyWildcard(st: SotwTypeState): void {
    // A full-state response is rebuilt from the cache anyway: a flag is enough.
    st.wildcardChanged = true;
  }

  protected hasWork(st: SotwTypeState): boolean {
    return st.mustRespond || st.wildcardChanged || st.dirty.size > 0;
  }

  protected flushType(st: SotwTypeState): void {
    const host = this.host;
    const cache = host.cache;
    if (!cache.ready || this.closed || this.blocked) return; // the work stays marked: ready / 'drain' flushes it
    const typeUrl = st.typeUrl;
    const frames: Buffer[] = [];
    let count = 0;
    if (FULL_STATE_TYPES.has(typeUrl)) {
      let needed = st.mustRespond || st.wildcardChanged;
      if (!needed) {
        for (const n of st.dirty) {
          if (cache.resolve(typeUrl, n)?.version !== st.sent.get(n)) {
            needed = true;
            break;
          }
        }
      }
      st.dirty.clear();
      st.wildcardChanged = false;
      if (!needed) return;
      if (st.wildcard) {
        frames.push(cache.wildcardFrames(typeUrl));
        count += cache.count(typeUrl);
      }
      const sent = new Map<string, string>();
      for (const n of st.names) {
        // With a wildcard every cached resource is in already; only callback ones are extra.
        if (st.wildcard && !cache.isServerListener(typeUrl, n)) continue;
        const e = cache.resolve(typeUrl, n);
        if (!e) continue;
        frames.push(e.frame);
        sent.set(n, e.version);
        count++;
      }
      st.sent = sent;
    } else if (st.mustRespond) {
      if (st.names.size === 0) {
        // Unsubscribed from every route/assignment: nothing to answer (SotW clients
        // ignore a missing RouteConfiguration/ClusterLoadAssignment anyway).
        st.mustRespond = false;
        st.sent.clear();
        st.dirty.clear();
        return;
      }
      const sent = new Map<string, string>();
      for (const n of st.names) {
        const e = cache.resolve(typeUrl, n);
        if (!e) continue;
        frames.push(e.frame);
        sent.set(n, e.version);
        count++;
      }
      st.sent = sent;
      st.dirty.clear();
    } else {
      // Only what changed; a removed route/assignment cannot be signalled in SotW.
      for (const n of st.dirty) {
        if (!st.names.has(n)) continue;
        const e = cache.resolve(typeUrl, n);
        if (!e) {
          st.sent.delete(n);
          continue;
        }
        if (st.sent.get(n) === e.version) continue;
        frames.push(e.frame);
        st.sent.set(n, e.version);
        count++;
      }
      st.dirty.clear();
      if (count === 0) return;
    }
    st.mustRespond = false;
    const nonce = host.nextNonce(this.id);
    const version = cache.typeVersion(typeUrl);
    const buf = sotwResponse(version, typeUrl, nonce, frames);
    st.answered = false;
    this.recordSend(st, version, nonce, count);
    this.write(buf);
  }
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
