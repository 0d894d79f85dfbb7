// What the benchmark reads about other processes and the machine: RSS and CPU
// time from /proc (Linux), and a description of the host.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';

let clkTck: number | undefined;
function ticksPerSecond(): number {
  if (clkTck === undefined) {
    try {
      clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clkTck = 100;
    }
  }
  return clkTck;
}

/** Resident set size in bytes (VmRSS), or NaN when the process is gone. */
export function rssBytes(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** User + system CPU time of the process in ms (utime + stime from /proc/PID/stat). */
export function cpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which is in parentheses and may contain spaces.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // rest[0] is field 3 (state): utime is field 14, stime field 15.
    const ticks = Number(rest[11]) + Number(rest[12]);
    return (ticks * 1000) / ticksPerSecond();
  } catch {
    return NaN;
  }
}

/**
 * RSS once it has settled: garbage collection cannot be forced in another process,
 * so sample every intervalMs and return the median of the last `samples` readings
 * (the heap grows and shrinks between collections; the median of a few seconds
 * is stable to a few MB).
 */
export async function settledRss(pid: number, samples = 5, intervalMs = 300): Promise<number> {
  const got: number[] = [];
  for (let i = 0; i < samples; i++) {
    if (i > 0) await new Promise((r) => setTimeout(r, intervalMs));
    got.push(rssBytes(pid));
  }
  got.sort((a, b) => a - b);
  return got[Math.floor(got.length / 2)]!;
}

export interface Machine {
  cpu: string;
  cores: number;
  memoryGB: number;
  node: string;
  os: string;
}

export function machine(): Machine {
  let cpu = cpus()[0]?.model ?? 'unknown';
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) cpu = m[1]!.trim();
  } catch {
    // not Linux: os.cpus() it is
  }
  let os: string = process.platform;
  try {
    os = `${process.platform} ${readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim()}`;
  } catch {
    // keep the platform name
  }
  return { cpu, cores: cpus().length, memoryGB: Math.round((totalmem() / 2 ** 30) * 10) / 10, node: process.version, os };
}

/**
 * settledRss, repeated until two consecutive readings agree (within 2% or 4 MB)
 * or `maxMs` passed. After a large one-off load (a full view, thousands of
 * first responses) a process keeps returning memory for seconds (V8 shrinks its
 * heap once allocation slows down): reading at once measures the load, not
 * the state.
 */
export async function stableRss(pid: number, maxMs = 30_000): Promise<number> {
  const t0 = Date.now();
  let prev = await settledRss(pid);
  for (;;) {
    const cur = await settledRss(pid);
    if (!Number.isFinite(cur) || Math.abs(cur - prev) <= Math.max(4 * 2 ** 20, 0.02 * prev) || Date.now() - t0 > maxMs) return cur;
    prev = cur;
  }
}
