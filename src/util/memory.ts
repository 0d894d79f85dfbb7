// Memory of this process, for status endpoints (what RSS is made of: V8 heap, Buffers, the rest).
export function memoryMB(): Record<string, number> {
  const m = process.memoryUsage();
  const mb = (n: number) => Math.round((n / 2 ** 20) * 10) / 10;
  return { rss: mb(m.rss), heapTotal: mb(m.heapTotal), heapUsed: mb(m.heapUsed), external: mb(m.external), arrayBuffers: mb(m.arrayBuffers) };
}

/**
 * Runs a full garbage collection when the process was started with
 * --expose-gc (benchmarks measure retained memory, not garbage awaiting
 * collection). Returns false, doing nothing, otherwise.
 */
export function collectGarbage(): boolean {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (typeof gc !== 'function') return false;
  gc();
  gc();
  return true;
}
