// The versioned store under the snapshot cache (snapshot-cache.ts), which every
// stream reads: per type, name -> immutable entry
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
//
// Memory: the cache is most of an agent's memory (tens of resources per global
// service). An entry holds its name, hash and where its bytes are; the bytes of
// small frames are packed into shared slabs (FrameArena) instead of one Buffer
// each, since Node's small-Buffer pool would interleave them with the encoder's
// short-lived buffers and keep those alive too (several times the frame bytes).
// Views of the bytes (`frame`, `any.value`) are made on use.
import { createHash } from 'node:crypto';
import { MeshfedError } from '../../util/errors.js';
import { flat } from '../../util/intern.js';
import { encodeResource } from '../proto.js';
import { writeAnyFrame } from '../wire.js';
import { RESOURCE_TYPES, type XdsResource } from '../../xdsapi/index.js';

/** One encoded resource, shared by every stream and response that carries it. */
export interface SnapshotEntry {
  readonly name: string;
  readonly typeUrl: string;
  /** Content hash: equal hashes mean byte-identical resources. */
  readonly hash: string;
  /** Per-resource version (see above): the content hash. */
  readonly version: string;
  /** google.protobuf.Any; `value` is a view into `frame` (the same object on every access). */
  readonly any: { readonly type_url: string; readonly value: Buffer };
  /** The resource as field 2 of a DiscoveryResponse (tag, length, Any). */
  readonly frame: Buffer;
  /** Where the Any message starts in frame. */
  readonly anyOffset: number;
}

/** Frames up to this size are packed into slabs; larger ones get their own Buffer. */
const MAX_PACKED = 8 * 1024;
const SLAB_BYTES = 64 * 1024;

/** Bump allocator over 64 KiB slabs (outside Node's Buffer pool). Slabs are freed by GC once no entry points into them. */
export class FrameArena {
  private slab: Buffer | undefined;
  private offset = 0;
  /** Bytes handed out from slabs so far. */
  carved = 0;

  alloc(n: number): { slab: Buffer; offset: number } {
    if (n > MAX_PACKED) return { slab: Buffer.allocUnsafeSlow(n), offset: 0 };
    if (!this.slab || this.offset + n > this.slab.length) {
      this.slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
      this.offset = 0;
    }
    const at = { slab: this.slab, offset: this.offset };
    this.offset += n;
    this.carved += n;
    return at;
  }
}

const anyViews = new WeakMap<CacheEntry, { readonly type_url: string; readonly value: Buffer }>();

class CacheEntry implements SnapshotEntry {
  constructor(
    readonly name: string,
    readonly typeUrl: string,
    readonly hash: string,
    private readonly slab: Buffer,
    private readonly offset: number,
    private readonly length: number,
    readonly anyOffset: number,
  ) {}

  get version(): string {
    return this.hash;
  }

  get frame(): Buffer {
    return this.slab.subarray(this.offset, this.offset + this.length);
  }

  get frameLength(): number {
    return this.length;
  }

  get any(): { readonly type_url: string; readonly value: Buffer } {
    let a = anyViews.get(this);
    if (!a) {
      const frame = this.frame;
      const valueOffset = valueStart(frame, this.anyOffset);
      a = { type_url: this.typeUrl, value: frame.subarray(valueOffset) };
      anyViews.set(this, a);
    }
    return a;
  }

  /** The same entry with its bytes copied into `arena`. */
  moveTo(arena: FrameArena): CacheEntry {
    const at = arena.alloc(this.length);
    this.slab.copy(at.slab, at.offset, this.offset, this.offset + this.length);
    return new CacheEntry(this.name, this.typeUrl, this.hash, at.slab, at.offset, this.length, this.anyOffset);
  }
}

/** Where the Any's value bytes start: after its type_url field and the value's tag and length. */
function valueStart(frame: Buffer, anyOffset: number): number {
  let off = anyOffset + 1; // type_url tag
  let len = 0;
  let shift = 0;
  for (;;) {
    const b = frame[off++]!;
    len += (b & 0x7f) * 2 ** shift;
    if (b < 0x80) break;
    shift += 7;
  }
  off += len + 1; // type_url, then the value's tag
  while (frame[off++]! >= 0x80);
  return off;
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
export function encodeEntry(r: XdsResource, hash = contentHash(r), arena = new FrameArena()): SnapshotEntry {
  const { value } = encodeResource(r);
  const f = writeAnyFrame(r.typeUrl, value, (n) => arena.alloc(n));
  return new CacheEntry(r.name, r.typeUrl, hash, f.slab, f.offset, f.length, f.anyOffset);
}

export class ResourceCache implements SnapshotView {
  private readonly byType = new Map<string, Map<string, SnapshotEntry>>(RESOURCE_TYPES.map((t) => [t, new Map()]));
  private arena = new FrameArena();
  /** Frame bytes of the entries in the cache. */
  private liveBytes = 0;
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
    const e = encodeEntry(r, hash, this.arena);
    this.encodes++;
    return e;
  }

  /** Debug mode: a hash hit must stand for the very same bytes, or cached bytes would go stale. */
  private checkSameBytes(r: XdsResource, e: SnapshotEntry): void {
    const fresh = encodeResource(r).value;
    if (Buffer.compare(Buffer.from(fresh.buffer, fresh.byteOffset, fresh.byteLength), e.any.value) !== 0) {
      throw new MeshfedError(
        'internal',
        `xDS debug: ${shortType(r.typeUrl)} "${r.name}": content hash ${e.hash} is cached with bytes ${bytesHash(e.any.value)} ` + `but the same content now encodes to bytes ${bytesHash(fresh)}`,
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
      if (!m) throw new MeshfedError('invalid', `unknown xDS resource type ${typeUrl}`);
      const names: string[] = [];
      for (const [name, op] of ops) {
        const cur = m.get(name);
        if (op === null) {
          if (!cur) continue;
          m.delete(name);
          this.liveBytes -= frameLength(cur);
        } else {
          if (cur && cur.hash === op.hash) continue;
          m.set(name, op);
          this.liveBytes += frameLength(op) - (cur ? frameLength(cur) : 0);
        }
        names.push(name);
      }
      if (names.length > 0) {
        changed.set(typeUrl, names);
        this.touch(typeUrl);
      }
    }
    this.maybeRepack();
    return changed;
  }

  /**
   * Replaced frames stay in their slabs until every frame of the slab is gone.
   * Slabs hold at most what the current arena carved (older arenas are gone).
   * Once that exceeds the live bytes by half (plus 16 MiB), every entry is
   * copied into fresh slabs and the old ones are freed: memory stays within
   * about 1.5x the live bytes, at a copy cost amortized over the encodes that
   * caused it. Entries keep their content and hash.
   */
  private maybeRepack(): void {
    if (this.arena.carved - this.liveBytes <= this.liveBytes / 2 + 16 * 1024 * 1024) return;
    const arena = new FrameArena();
    for (const m of this.byType.values()) {
      for (const [name, e] of m) if (e instanceof CacheEntry) m.set(name, e.moveTo(arena));
    }
    this.arena = arena;
    this.wildcard.clear();
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
  // flat(): a slice would keep the whole digest string alive behind every entry.
  return flat(h.digest('base64url').slice(0, 22));
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

function frameLength(e: SnapshotEntry): number {
  return e instanceof CacheEntry ? e.frameLength : e.frame.length;
}

function bytesHash(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('base64url').slice(0, 22);
}

export function shortType(typeUrl: string): string {
  return typeUrl.slice(typeUrl.lastIndexOf('.') + 1);
}
