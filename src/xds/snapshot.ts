// The resource cache every stream reads: per type, name -> immutable entry
// {hash, version, encoded bytes}. Plain message objects are not kept after
// encoding. A change replaces entries (never mutates one) and bumps the version of
// the types it touched, so work per change follows the resources it changed, not
// the size of the cache; and since a batch is installed synchronously, a stream
// that reads the cache (now or after a blocked write drains) sees either all of a
// batch or none of it.
//
// Versions:
// - the cache version counts commits (every setResources is one, even unchanged:
//   callers read it as "my last call is in");
// - a type's version is the cache version of the last commit that changed it
//   (DiscoveryResponse.version_info, DeltaDiscoveryResponse.system_version_info);
// - a resource's version is its content hash (delta Resource.version): equal
//   versions mean byte-identical resources even across control-plane restarts,
//   so a reconnecting delta client's initial_resource_versions stay meaningful.
import { createHash } from 'node:crypto';
import { RESOURCE_TYPES, type XdsResource } from '../translate/xds/types.js';
import { encodeResource } from './proto.js';
import { anyFrame } from './wire.js';

/** One encoded resource, shared by every stream and response that carries it. */
export interface SnapshotEntry {
  readonly name: string;
  readonly typeUrl: string;
  /** Content hash: equal hashes mean byte-identical resources. */
  readonly hash: string;
  /** Per-resource version (see above): the content hash. */
  readonly version: string;
  /** google.protobuf.Any; `value` is a view into `frame`. */
  readonly any: { readonly type_url: string; readonly value: Buffer };
  /** The resource as field 2 of a DiscoveryResponse (tag, length, Any). */
  readonly frame: Buffer;
  /** Where the Any message starts in frame. */
  readonly anyOffset: number;
}

/** Read access to the current state (a live view, not a copy). */
export interface SnapshotView {
  readonly version: string;
  get(typeUrl: string, name: string): SnapshotEntry | undefined;
  /** Every resource of a type (insertion order). */
  all(typeUrl: string): SnapshotEntry[];
  count(typeUrl: string): number;
}

/** A pending operation on one name: the entry to install, or null to remove it. */
export type CacheOp = SnapshotEntry | null;
/** typeUrl -> name -> op. */
export type CacheBatch = Map<string, Map<string, CacheOp>>;

/** Encodes a resource (strictly: throws on unknown fields) into a cache entry. */
export function encodeEntry(r: XdsResource, hash = contentHash(r)): SnapshotEntry {
  const { value } = encodeResource(r);
  const f = anyFrame(r.typeUrl, value);
  return { name: r.name, typeUrl: r.typeUrl, hash, version: hash, any: { type_url: r.typeUrl, value: f.value }, frame: f.frame, anyOffset: f.anyOffset };
}

export class ResourceCache implements SnapshotView {
  private readonly byType = new Map<string, Map<string, SnapshotEntry>>(RESOURCE_TYPES.map((t) => [t, new Map()]));
  private readonly typeVersions = new Map<string, string>();
  private seq = 0;
  /** Concatenated frames of a whole type, for SotW wildcard responses; built at most once per type version. */
  private readonly wildcard = new Map<string, { version: string; frames: Buffer }>();
  /** Resources encoded so far (tests check that unchanged content is not encoded again). */
  encodes = 0;

  constructor(private readonly debug = false) {}

  get version(): string {
    return String(this.seq);
  }

  typeVersion(typeUrl: string): string {
    return this.typeVersions.get(typeUrl) ?? '';
  }

  typeVersionsRecord(): Record<string, string> {
    return Object.fromEntries(RESOURCE_TYPES.map((t) => [t, this.typeVersion(t)]));
  }

  has(typeUrl: string): boolean {
    return this.byType.has(typeUrl);
  }

  get(typeUrl: string, name: string): SnapshotEntry | undefined {
    return this.byType.get(typeUrl)?.get(name);
  }

  all(typeUrl: string): SnapshotEntry[] {
    return [...(this.byType.get(typeUrl)?.values() ?? [])];
  }

  names(typeUrl: string): IterableIterator<string> {
    return (this.byType.get(typeUrl) ?? new Map<string, SnapshotEntry>()).keys();
  }

  count(typeUrl: string): number {
    return this.byType.get(typeUrl)?.size ?? 0;
  }

  get size(): number {
    let n = 0;
    for (const m of this.byType.values()) n += m.size;
    return n;
  }

  /**
   * The entry for `r`: one of `reuse` when its content hash matches (no encoding),
   * else a freshly encoded one. Throws on invalid resources; changes nothing.
   */
  prepare(r: XdsResource, ...reuse: (SnapshotEntry | null | undefined)[]): SnapshotEntry {
    const hash = contentHash(r);
    for (const e of reuse) {
      if (e && e.hash === hash) {
        if (this.debug) this.checkSameBytes(r, e);
        return e;
      }
    }
    const e = encodeEntry(r, hash);
    this.encodes++;
    return e;
  }

  /** Debug mode: a hash hit must stand for the very same bytes, or cached bytes would go stale. */
  private checkSameBytes(r: XdsResource, e: SnapshotEntry): void {
    const fresh = encodeResource(r).value;
    if (Buffer.compare(Buffer.from(fresh.buffer, fresh.byteOffset, fresh.byteLength), e.any.value) !== 0) {
      throw new Error(
        `xDS debug: ${shortType(r.typeUrl)} "${r.name}": content hash ${e.hash} is cached with bytes ${bytesHash(e.any.value)} ` +
          `but the same content now encodes to bytes ${bytesHash(fresh)}`,
      );
    }
  }

  /**
   * Installs a batch as one new version. Returns, per type, the names whose entry
   * actually changed (ops that restate the current content are dropped).
   */
  commit(batch: CacheBatch): Map<string, string[]> {
    this.seq++;
    const changed = new Map<string, string[]>();
    for (const [typeUrl, ops] of batch) {
      const m = this.byType.get(typeUrl);
      if (!m) throw new Error(`unknown xDS resource type ${typeUrl}`);
      const names: string[] = [];
      for (const [name, op] of ops) {
        const cur = m.get(name);
        if (op === null) {
          if (!cur) continue;
          m.delete(name);
        } else {
          if (cur && cur.hash === op.hash) continue;
          m.set(name, op);
        }
        names.push(name);
      }
      if (names.length > 0) {
        changed.set(typeUrl, names);
        this.touch(typeUrl);
      }
    }
    return changed;
  }

  /** Gives a type the current cache version (its content changed outside commit(), e.g. server listeners). */
  touch(typeUrl: string): void {
    this.typeVersions.set(typeUrl, this.version);
    this.wildcard.delete(typeUrl);
  }

  /** Every resource of a type as one buffer of DiscoveryResponse `resources` fields (SotW wildcard). */
  wildcardFrames(typeUrl: string): Buffer {
    const v = this.typeVersion(typeUrl);
    const memo = this.wildcard.get(typeUrl);
    if (memo && memo.version === v) return memo.frames;
    const frames = Buffer.concat([...(this.byType.get(typeUrl)?.values() ?? [])].map((e) => e.frame));
    this.wildcard.set(typeUrl, { version: v, frames });
    return frames;
  }
}

/** Hash of type URL, name and message with keys sorted, so equal content hashes equally. */
export function contentHash(r: XdsResource): string {
  const h = createHash('sha256');
  h.update(r.typeUrl);
  h.update('\u0000');
  h.update(r.name);
  h.update('\u0000');
  h.update(canonicalJson(r.message));
  return h.digest('base64url').slice(0, 22);
}

function canonicalJson(v: unknown): string {
  // JSON.stringify writes NaN and ±Infinity as null, which would hash like an unset field.
  if (typeof v === 'number' && !Number.isFinite(v)) return JSON.stringify({ $num: String(v) });
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (v instanceof Uint8Array) return JSON.stringify({ $bytes: Buffer.from(v).toString('base64') });
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  const keys = Object.keys(v)
    .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`).join(',')}}`;
}

function bytesHash(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('base64url').slice(0, 22);
}

export function shortType(typeUrl: string): string {
  return typeUrl.slice(typeUrl.lastIndexOf('.') + 1);
}
