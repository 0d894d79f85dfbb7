// Process helpers for end-to-end tests: free ports, node programs that print one
// JSON object per line, and a registry so nothing outlives the test run.
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Repository root (tests run from dist/test/...). */
export const REPO_ROOT = findRoot();
function findRoot(): string {
  // dist/test/helpers/procs.js -> repo root is three levels up; src-relative runs are two.
  const here = path.dirname(fileURLToPath(import.meta.url));
  const parts = here.split(path.sep);
  const i = parts.lastIndexOf('dist');
  return i >= 0 ? parts.slice(0, i).join(path.sep) || path.sep : path.resolve(here, '..', '..');
}

/** Compiled JS of a source module, e.g. dist('src/samples/helloworld/server.js'). */
export function distPath(rel: string): string {
  return path.join(REPO_ROOT, 'dist', rel);
}

/**
 * A port free on every interface. Binds the unspecified address because an xDS
 * gRPC server listens on `::` whatever IP it is given.
 */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

export async function freePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}

export type JsonLine = Record<string, unknown> & { event?: string };

export interface NodeProc {
  name: string;
  child: ChildProcess;
  /** Every JSON line so far, in order. */
  lines: JsonLine[];
  /** stderr so far (for failure messages). */
  stderr(): string;
  /** Resolves with the first line (already seen or future) matching `pred`. */
  waitFor(pred: (l: JsonLine) => boolean, timeoutMs?: number, what?: string): Promise<JsonLine>;
  /** Calls `fn` for every future line. */
  onLine(fn: (l: JsonLine) => void): void;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, then SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

const live = new Set<NodeProc>();

// Last resort if a test run dies without its after hooks: children must not linger.
process.on('exit', () => {
  for (const p of live) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
});

export function spawnNode(name: string, script: string, args: string[], env: Record<string, string> = {}): NodeProc {
  const child = spawn(process.execPath, [script, ...args], {
    cwd: REPO_ROOT,
    // A stdin pipe that the child watches: if this process dies, even by SIGKILL,
    // the pipe closes and the child exits (see exitWithParent in the samples).
    env: { ...process.env, MESHFED_EXIT_WITH_STDIN: '1', ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const lines: JsonLine[] = [];
  const listeners: ((l: JsonLine) => void)[] = [];
  let err = '';
  let buf = '';
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    buf += chunk;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const text = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (!text) continue;
      let line: JsonLine;
      try {
        line = JSON.parse(text) as JsonLine;
      } catch {
        line = { event: 'text', text };
      }
      lines.push(line);
      for (const fn of [...listeners]) fn(line);
    }
  });
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    err = (err + chunk).slice(-20_000);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => {
      live.delete(proc);
      resolve({ code, signal });
    });
  });
  const proc: NodeProc = {
    name,
    child,
    lines,
    stderr: () => err,
    exited,
    onLine: (fn) => listeners.push(fn),
    waitFor(pred, timeoutMs = 10_000, what = 'a matching line') {
      const seen = lines.find(pred);
      if (seen) return Promise.resolve(seen);
      if (child.exitCode !== null || child.signalCode !== null) {
        return Promise.reject(new Error(`${name} has exited; no ${what}\nstderr: ${err.slice(-2000)}`));
      }
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          done();
          reject(
            new Error(
              `${name}: timed out after ${timeoutMs} ms waiting for ${what}\nstdout: ${lines
                .slice(-5)
                .map((l) => JSON.stringify(l))
                .join('\n')}\nstderr: ${err.slice(-2000)}`,
            ),
          );
        }, timeoutMs);
        const onExit = (): void => {
          done();
          reject(new Error(`${name} exited while waiting for ${what}\nstderr: ${err.slice(-2000)}`));
        };
        const fn = (l: JsonLine): void => {
          if (!pred(l)) return;
          done();
          resolve(l);
        };
        const done = (): void => {
          clearTimeout(timer);
          child.off('exit', onExit);
          const i = listeners.indexOf(fn);
          if (i >= 0) listeners.splice(i, 1);
        };
        listeners.push(fn);
        child.once('exit', onExit);
      });
    },
    async stop(graceMs = 2000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(t);
    },
  };
  live.add(proc);
  return proc;
}

/** Stops every process spawned by this test file; call from after(). */
export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((p) => p.stop()));
}

/** Polls `fn` until it returns a truthy value. */
export async function eventually<T>(fn: () => T | undefined | false | null, timeoutMs = 10_000, what = 'condition', intervalMs = 10): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
