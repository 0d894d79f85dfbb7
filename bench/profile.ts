// Where the time goes: a summary of a V8 .cpuprofile (written by `node --cpu-prof`
// on exit) as self time per function and per source file, so a missed target
// can be explained without opening a profiler.
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface ProfileSummary {
  file: string;
  /** Set when only part of the run was summarized. */
  window?: string;
  totalMs: number;
  /** Self time, excluding idle and GC, by function. */
  functions: { name: string; ms: number; pct: number }[];
  /** Self time by source file (package or meshfed source). */
  files: { file: string; ms: number; pct: number }[];
  idleMs: number;
  gcMs: number;
}

function shortUrl(url: string): string {
  if (!url) return '(native)';
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  const dist = url.indexOf('/dist/');
  if (dist >= 0) return url.slice(dist + '/dist/'.length);
  return url.replace(/^file:\/\//, '').replace(/^node:/, 'node:');
}

/** Now on the clock V8 stamps profiles with (CLOCK_MONOTONIC on Linux, in µs). */
export function monotonicUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

/**
 * Self time by function and file. With `window` (µs, monotonicUs() clock), only
 * the samples taken in it: e.g. the change series, without the fleet's load.
 */
export function summarizeProfile(file: string, window?: { from: number; to: number; label: string }, top = 15): ProfileSummary {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  let t = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i] ?? 0;
    if (window && (t < window.from || t > window.to)) continue;
    const id = p.samples[i]!;
    self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0));
  }
  const fns = new Map<string, number>();
  const files = new Map<string, number>();
  let idle = 0;
  let gc = 0;
  let total = 0;
  for (const [id, us] of self) {
    const n = byId.get(id)!;
    const f = n.callFrame;
    total += us;
    if (f.functionName === '(idle)') {
      idle += us;
      continue;
    }
    if (f.functionName === '(garbage collector)') {
      gc += us;
      continue;
    }
    const where = shortUrl(f.url);
    const name = `${f.functionName || '(anonymous)'} ${where}${f.url ? `:${f.lineNumber + 1}` : ''}`;
    fns.set(name, (fns.get(name) ?? 0) + us);
    files.set(where, (files.get(where) ?? 0) + us);
  }
  const busy = total - idle;
  const rank = (m: Map<string, number>) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([k, us]) => ({ k, ms: Math.round(us / 100) / 10, pct: busy > 0 ? Math.round((us / busy) * 1000) / 10 : 0 }));
  return {
    file,
    ...(window ? { window: window.label } : {}),
    totalMs: Math.round(total / 1000),
    functions: rank(fns).map(({ k, ms, pct }) => ({ name: k, ms, pct })),
    files: rank(files).map(({ k, ms, pct }) => ({ file: k, ms, pct })),
    idleMs: Math.round(idle / 1000),
    gcMs: Math.round(gc / 1000),
  };
}

export function formatProfile(s: ProfileSummary): string {
  const lines = [`profile ${s.file}${s.window ? ` (${s.window})` : ''}: ${s.totalMs} ms sampled, ${s.idleMs} ms idle, ${s.gcMs} ms GC; self time of the busy part:`];
  lines.push('  by file:');
  for (const f of s.files) lines.push(`    ${String(f.pct).padStart(5)}%  ${String(f.ms).padStart(9)} ms  ${f.file}`);
  lines.push('  by function:');
  for (const f of s.functions) lines.push(`    ${String(f.pct).padStart(5)}%  ${String(f.ms).padStart(9)} ms  ${f.name}`);
  return lines.join('\n');
}
