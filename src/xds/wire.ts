// Hand-written protobuf framing of DiscoveryResponse and DeltaDiscoveryResponse.
// Why: every resource is encoded once (snapshot.ts keeps it as the ready-made bytes
// of the `resources` field); a response is then a concatenation of shared buffers,
// not a protobufjs re-encode of every Any for every stream. The layouts follow
// envoy/service/discovery/v3/discovery.proto; tests decode them with protobufjs.
//
//   DiscoveryResponse      { string version_info = 1; repeated Any resources = 2;
//                            string type_url = 4; string nonce = 5; }
//   DeltaDiscoveryResponse { string system_version_info = 1; repeated Resource resources = 2;
//                            string type_url = 4; string nonce = 5; repeated string removed_resources = 6; }
//   Resource               { string version = 1; Any resource = 2; string name = 3; }
//   Any                    { string type_url = 1; bytes value = 2; }

const LEN = 2; // wire type of strings, bytes and messages

function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

function writeVarint(buf: Buffer, off: number, n: number): number {
  while (n >= 0x80) {
    buf[off++] = (n % 128) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[off++] = n;
  return off;
}

/** Tag (field numbers here are < 16, so one byte) and length prefix of a length-delimited field. */
function header(field: number, length: number): Buffer {
  const b = Buffer.allocUnsafe(1 + varintSize(length));
  b[0] = (field << 3) | LEN;
  writeVarint(b, 1, length);
  return b;
}

/** A string field; empty strings are left out, as proto3 encoders do. */
function stringField(field: number, s: string): Buffer[] {
  if (s === '') return [];
  const bytes = Buffer.from(s, 'utf8');
  return [header(field, bytes.length), bytes];
}

export interface AnyFrame {
  /** The `resources` field (2) of a DiscoveryResponse holding this Any: tag, length, Any message. */
  frame: Buffer;
  /** Where the Any message starts inside frame. */
  anyOffset: number;
  /** The Any's value bytes (a view into frame, no copy). */
  value: Buffer;
}

/** Frames an encoded resource once; every SotW response then copies these bytes as they are. */
export function anyFrame(typeUrl: string, value: Uint8Array): AnyFrame {
  const f = writeAnyFrame(typeUrl, value, (n) => ({ slab: Buffer.allocUnsafe(n), offset: 0 }));
  const frame = f.slab.subarray(f.offset, f.offset + f.length);
  return { frame, anyOffset: f.anyOffset, value: frame.subarray(f.valueOffset) };
}

const urlBytes = new Map<string, Buffer>();

/** Writes the frame of an Any into memory from `alloc` (e.g. a slab shared by many frames). */
export function writeAnyFrame(
  typeUrl: string,
  value: Uint8Array,
  alloc: (n: number) => { slab: Buffer; offset: number },
): { slab: Buffer; offset: number; length: number; anyOffset: number; valueOffset: number } {
  let url = urlBytes.get(typeUrl);
  if (!url) urlBytes.set(typeUrl, (url = Buffer.from(typeUrl, 'utf8')));
  const anyLen = 1 + varintSize(url.length) + url.length + 1 + varintSize(value.length) + value.length;
  const anyOffset = 1 + varintSize(anyLen);
  const length = anyOffset + anyLen;
  const { slab, offset } = alloc(length);
  slab[offset] = (2 << 3) | LEN;
  let off = writeVarint(slab, offset + 1, anyLen);
  slab[off++] = (1 << 3) | LEN;
  off = writeVarint(slab, off, url.length);
  off += url.copy(slab, off);
  slab[off++] = (2 << 3) | LEN;
  off = writeVarint(slab, off, value.length);
  slab.set(value, off);
  return { slab, offset, length, anyOffset, valueOffset: off - offset };
}

/** A DiscoveryResponse; `frames` are AnyFrame.frame buffers (or concatenations of them). */
export function sotwResponse(versionInfo: string, typeUrl: string, nonce: string, frames: readonly Buffer[]): Buffer {
  return Buffer.concat([...stringField(1, versionInfo), ...frames, ...stringField(4, typeUrl), ...stringField(5, nonce)]);
}

export interface DeltaResource {
  readonly name: string;
  readonly version: string;
  readonly frame: Buffer;
  readonly anyOffset: number;
}

/** A DeltaDiscoveryResponse: each resource wrapped in a Resource { name, version, resource }. */
export function deltaResponse(systemVersion: string, typeUrl: string, nonce: string, resources: readonly DeltaResource[], removed: readonly string[]): Buffer {
  const parts: Buffer[] = [...stringField(1, systemVersion)];
  for (const r of resources) {
    const any = r.frame.subarray(r.anyOffset);
    const name = stringField(3, r.name);
    const version = stringField(1, r.version);
    const anyHeader = header(2, any.length);
    let len = anyHeader.length + any.length;
    for (const b of name) len += b.length;
    for (const b of version) len += b.length;
    parts.push(header(2, len), ...version, anyHeader, any, ...name);
  }
  parts.push(...stringField(4, typeUrl), ...stringField(5, nonce));
  for (const n of removed) {
    const bytes = Buffer.from(n, 'utf8');
    // An empty name is still a (meaningless) entry: keep it rather than change the list.
    parts.push(header(6, bytes.length), bytes);
  }
  return Buffer.concat(parts);
}
