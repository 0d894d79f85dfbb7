// Durations in API objects: "250ms", "2s", "1m", "24h", "30d".
import { Type } from '@sinclair/typebox';

export const DURATION = '^[0-9]+(\\.[0-9]+)?(ms|s|m|h|d)$';
export const Duration = Type.String({
  pattern: DURATION,
  patternMessage: 'must be a duration: a number and a unit (ms, s, m, h or d), e.g. 250ms, 2s, 1m, 24h',
  description: 'e.g. 250ms, 2s, 1m, 24h, 30d',
});

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export function durationMs(d: string): number {
  const m = /^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)$/.exec(d);
  if (!m) throw new Error(`bad duration "${d}"`);
  return Math.round(Number(m[1]) * UNIT_MS[m[2]!]!);
}
