// A helloworld client's per-tick JSON lines, collected so an end-to-end test can
// wait for a condition on the newest ones and sum calls over a window.
import type { Child } from '../../src/demo/processes.js';

export interface Tick {
  ok: number;
  failed: number;
  byBackend: Record<string, number>;
  errors: Record<string, number>;
  /** How servers saw the caller (SPIFFE ID over mTLS, "plaintext"). */
  peers: Record<string, number>;
}

export class TickLog {
  readonly ticks: (Tick & { at: number })[] = [];
  constructor(readonly child: Child) {
    child.onEvent((e) => {
      if (e.event === 'tick') this.ticks.push({ ...(e as unknown as Tick), peers: (e as { peers?: Record<string, number> }).peers ?? {}, at: Date.now() });
    });
  }
  mark(): number {
    return this.ticks.length;
  }
  since(mark: number): Tick {
    const sum: Tick = { ok: 0, failed: 0, byBackend: {}, errors: {}, peers: {} };
    for (const t of this.ticks.slice(mark)) {
      sum.ok += t.ok;
      sum.failed += t.failed;
      for (const k of ['byBackend', 'errors', 'peers'] as const) for (const [name, v] of Object.entries(t[k])) sum[k][name] = (sum[k][name] ?? 0) + v;
    }
    return sum;
  }
  /** Waits until n consecutive ticks after mark satisfy pred; returns ms from `from` to the first of them. */
  async waitFor(mark: number, n: number, pred: (t: Tick) => boolean, timeoutMs = 15_000, from = Date.now()): Promise<number> {
    const start = Date.now();
    for (;;) {
      const recent = this.ticks.slice(mark);
      for (let i = 0; i + n <= recent.length; i++) {
        if (recent.slice(i, i + n).every(pred)) return recent[i]!.at - from;
      }
      if (Date.now() - start > timeoutMs) throw new Error(`condition not met within ${timeoutMs} ms; ticks: ${JSON.stringify(recent.slice(-5))}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  /** Sums the n ticks after mark (waiting for them). */
  async ticksAfter(mark: number, n: number, timeoutMs = 15_000): Promise<Tick> {
    const deadline = Date.now() + timeoutMs;
    while (this.ticks.length < mark + n) {
      if (Date.now() > deadline) throw new Error(`only ${this.ticks.length - mark} ticks in ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
    return this.since(mark);
  }
  /** Sums ticks after mark until at least `calls` calls finished. */
  async calls(mark: number, calls: number, timeoutMs = 30_000): Promise<Tick> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const s = this.since(mark);
      if (s.ok + s.failed >= calls) return s;
      if (Date.now() > deadline) throw new Error(`only ${s.ok + s.failed} calls in ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
