// The process's own event-loop delay (perf_hooks.monitorEventLoopDelay): how
// long a request or timer could have waited behind synchronous work. One
// monitor per process, started on first use; the hub reports it in
// GET /api/v1alpha1/hub so a benchmark can see the worst stall.
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';

let histogram: IntervalHistogram | undefined;

/** Starts measuring (idempotent). Resolution 10 ms: a stall is reported to within that. */
export function startEventLoopMonitor(): void {
  if (histogram) return;
  histogram = monitorEventLoopDelay({ resolution: 10 });
  histogram.enable();
}

/** Max, p99 and mean delay in ms since the start (or the last reset). */
export function eventLoopDelay(reset = false): { maxMs: number; p99Ms: number; meanMs: number } {
  if (!histogram) return { maxMs: 0, p99Ms: 0, meanMs: 0 };
  const ms = (ns: number) => Math.round(ns / 1e4) / 100;
  const out = { maxMs: ms(histogram.max), p99Ms: ms(histogram.percentile(99)), meanMs: ms(histogram.mean) };
  if (reset) histogram.reset();
  return out;
}
