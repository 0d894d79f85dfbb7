// Immutable, versioned snapshots of encoded resources. A resource is encoded once
// per distinct content: the encoder caches bytes by content hash, so a resource
// that did not change reuses its bytes (and hash) in the next snapshot, and every
// stream sends the very same Buffer.
import { createHash } from 'node:crypto';
import { RESOURCE_TYPES, mapFor, type XdsResource, type XdsResources } from '../translate/xds/types.js';
import { encodeResource } from './proto.js';

/** One encoded resource, ready to go into DiscoveryResponse.resources. */
export interface SnapshotEntry {
  readonly name: string;
  readonly typeUrl: string;
  /** Content hash: equal hashes mean byte-identical resources. */
  readonly hash: string;
  /** google.protobuf.Any as proto-loader serializes it. */
  readonly any: { readonly type_url: string; readonly value: Buffer };
}

export class Snapshot {
  private constructor(
    readonly version: string,
    private readonly byType: ReadonlyMap<string, ReadonlyMap<string, SnapshotEntry>>,
    readonly createdAt: Date,
  ) {}

  static build(version: string, res: XdsResources, encoder: ResourceEncoder): Snapshot {
    const byType = new Map<string, ReadonlyMap<string, SnapshotEntry>>();
    for (const typeUrl of RESOURCE_TYPES) {
      const entries = new Map<string, SnapshotEntry>();
      for (const name of [...mapFor(res, typeUrl).keys()].sort()) {
        const r = mapFor(res, typeUrl).get(name)!;
        if (r.typeUrl !== typeUrl || r.name !== name) {
          throw new Error(`resource ${r.name} (${r.typeUrl}) is filed under ${name} in the ${typeUrl} map`);
        }
        entries.set(name, encoder.entry(r));
      }
      byType.set(typeUrl, entries);
    }
    return new Snapshot(version, byType, new Date());
  }

  static empty(version: string): Snapshot {
    return new Snapshot(version, new Map(RESOURCE_TYPES.map((t) => [t, new Map()])), new Date());
  }

  get(typeUrl: string, name: string): SnapshotEntry | undefined {
    return this.byType.get(typeUrl)?.get(name);
  }

  /** Every resource of a type, in name order. */
  all(typeUrl: string): SnapshotEntry[] {
    return [...(this.byType.get(typeUrl)?.values() ?? [])];
  }

  count(typeUrl: string): number {
    return this.byType.get(typeUrl)?.size ?? 0;
  }

  /** Every hash in the snapshot (for cache retention). */
  hashes(): Set<string> {
    const s = new Set<string>();
    for (const m of this.byType.values()) for (const e of m.values()) s.add(e.hash);
    return s;
  }
}

/** Encodes resources, at most once per distinct content. */
export class ResourceEncoder {
  private cache = new Map<string, SnapshotEntry>();
  /** Encodings performed (tests check that unchanged resources are not re-encoded). */
  encodes = 0;

  entry(r: XdsResource): SnapshotEntry {
    const hash = contentHash(r);
    let e = this.cache.get(hash);
    if (!e) {
      const { value } = encodeResource(r);
      this.encodes++;
      e = { name: r.name, typeUrl: r.typeUrl, hash, any: { type_url: r.typeUrl, value: Buffer.from(value.buffer, value.byteOffset, value.byteLength) } };
      this.cache.set(hash, e);
    }
    return e;
  }

  /** Drops cached encodings that no live snapshot (or extra entry) uses. */
  retain(keep: Set<string>): void {
    for (const h of this.cache.keys()) if (!keep.has(h)) this.cache.delete(h);
  }

  get size(): number {
    return this.cache.size;
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
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (v instanceof Uint8Array) return JSON.stringify({ $bytes: Buffer.from(v).toString('base64') });
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  const keys = Object.keys(v)
    .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`).join(',')}}`;
}
