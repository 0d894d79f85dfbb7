// Watches the hub's Workloads (GET /api/v1alpha1/workloads?watch=1) to timestamp
// when the hub committed each change: splits a change's latency into agent A +
// hub commit, and hub -> agent B -> proxies. One watcher costs the hub one
// JSON line per event.
import { now } from './ipc.js';

export class HubWatch {
  private readonly ctrl = new AbortController();
  /** Workload name -> time the bench saw the hub's event for it (latest). */
  private readonly seen = new Map<string, number>();
  private readonly waiters = new Map<string, (t: number) => void>();

  private constructor() {}

  static async start(hubUrl: string, token: string): Promise<HubWatch> {
    const w = new HubWatch();
    const res = await fetch(`${hubUrl}/api/v1alpha1/workloads?watch=1`, { signal: w.ctrl.signal, headers: { authorization: `Bearer ${token}` } });
    if (!res.ok || !res.body) throw new Error(`hub watch: ${res.status}`);
    void w.read(res.body).catch(() => undefined);
    return w;
  }

  private async read(body: ReadableStream<Uint8Array>): Promise<void> {
    const dec = new TextDecoder();
    let buf = '';
    for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
      const at = now();
      buf += dec.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const e = JSON.parse(line) as { type: string; object?: { metadata?: { name?: string } } };
        const name = e.object?.metadata?.name;
        if (!name) continue;
        this.seen.set(name, at);
        this.waiters.get(name)?.(at);
        this.waiters.delete(name);
      }
    }
  }

  /** Forgets what was seen for `name` (call before making the change). */
  reset(name: string): void {
    this.seen.delete(name);
  }

  /** When the hub's event for `name` arrived (after reset), waiting up to timeoutMs; NaN if it did not. */
  when(name: string, timeoutMs: number): Promise<number> {
    const t = this.seen.get(name);
    if (t !== undefined) return Promise.resolve(t);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiters.delete(name);
        resolve(NaN);
      }, timeoutMs);
      this.waiters.set(name, (at) => {
        clearTimeout(timer);
        resolve(at);
      });
    });
  }

  close(): void {
    this.ctrl.abort();
  }
}
