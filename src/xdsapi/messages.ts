// Helpers for the well-known protobuf shapes xDS messages are built from (Any,
// Duration, wrapper values), in protobufjs `fromObject` form. Pure.

/** An Any holding `typeUrl` with the given fields. */
export function anyOf(typeUrl: string, fields: Record<string, unknown> = {}): Record<string, unknown> {
  return { '@type': typeUrl, ...fields };
}

/** google.protobuf.Duration from milliseconds. */
export function duration(ms: number): { seconds: number; nanos?: number } {
  const seconds = Math.floor(ms / 1000);
  const nanos = (ms % 1000) * 1_000_000;
  return nanos ? { seconds, nanos } : { seconds };
}

/** Wrapper message (UInt32Value, BoolValue, ...). */
export function wrap<T>(value: T): { value: T } {
  return { value };
}
