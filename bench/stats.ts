// Latency percentiles for the benchmark points: nearest rank (p99 of 100
// samples is the 99th value, not an interpolation), with the maximum and count.
export interface Pct {
  p50: number;
  p90: number;
  p99: number;
  max: number;
  n: number;
}

export function percentiles(values: number[]): Pct {
  const s = [...values].sort((a, b) => a - b);
  const at = (p: number) => (s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]! : NaN);
  return { p50: at(50), p90: at(90), p99: at(99), max: s.length ? s[s.length - 1]! : NaN, n: s.length };
}
