// Child processes for the demo and the end-to-end tests: start meshfed and the
// sample programs as real processes, read their JSON-line events, and make sure
// none is left behind.
import { apiFetch, type ApiCredentials } from '../cli/http.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { packageRoot } from '../util/paths.js';

export function meshfedBin(): string {
  return join(packageRoot(), 'bin', 'meshfed.js');
}

export function sampleProgram(name: 'server' | 'client'): string {
  return join(packageRoot(), 'dist', 'src', 'samples', 'helloworld', `${name}.js`);
}

/** A free TCP port on 127.0.0.1 (bound and released; good enough on one machine). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface Child {
  name: string;
  proc: ChildProcess;
  /** Last lines of stderr, for error messages. */
  stderrTail: string[];
  exited: Promise<number | null>;
  /** Calls fn for each JSON line on stdout. */
  onEvent(fn: (e: Record<string, unknown>) => void): void;
  /** Resolves with the first stdout JSON event matching pred. */
  waitEvent(pred: (e: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
}

export class ProcessGroup {
  private readonly children: Child[] = [];

  constructor(private readonly opts: { echoStderr?: boolean; prefixStderr?: boolean; /** every child's stderr, appended to <logDir>/<name>.log */ logDir?: string } = {}) {}

  start(name: string, args: string[], env: Record<string, string> = {}): Child {
    const proc = spawn(process.execPath, args, {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const listeners: ((e: Record<string, unknown>) => void)[] = [];
    const stderrTail: string[] = [];
    let logFile: WriteStream | undefined;
    if (this.opts.logDir) {
      mkdirSync(this.opts.logDir, { recursive: true });
      logFile = createWriteStream(join(this.opts.logDir, `${name}.log`), { flags: 'a' });
    }
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      if (!line.startsWith('{')) return;
      let e: Record<string, unknown>;
      try {
        e = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      for (const l of listeners) l(e);
    });
    const stderrLines = createInterface({ input: proc.stderr! });
    stderrLines.once('close', () => logFile?.end());
    stderrLines.on('line', (line) => {
      stderrTail.push(line);
      if (stderrTail.length > 30) stderrTail.shift();
      logFile?.write(line + '\n');
      if (this.opts.echoStderr) process.stderr.write(this.opts.prefixStderr ? `[${name}] ${line}\n` : `${line}\n`);
    });
    const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
    const child: Child = {
      name,
      proc,
      stderrTail,
      exited,
      onEvent: (fn) => listeners.push(fn),
      waitEvent: (pred, timeoutMs = 20_000) =>
        new Promise((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`${name}: no matching event within ${timeoutMs} ms\n${stderrTail.slice(-10).join('\n')}`)), timeoutMs);
          const done = (e: Record<string, unknown>) => {
            if (!pred(e)) return;
            clearTimeout(timer);
            resolve(e);
          };
          listeners.push(done);
          void exited.then((code) => {
            clearTimeout(timer);
            reject(new Error(`${name} exited (code ${code}) before the expected event:\n${stderrTail.slice(-10).join('\n')}`));
          });
        }),
    };
    this.children.push(child);
    return child;
  }

  /** Stops a child: SIGTERM, then SIGKILL after graceMs. */
  async stop(child: Child, graceMs = 3000): Promise<void> {
    if (child.proc.exitCode !== null || child.proc.signalCode !== null) return;
    child.proc.kill('SIGTERM');
    const timer = setTimeout(() => child.proc.kill('SIGKILL'), graceMs);
    await child.exited;
    clearTimeout(timer);
  }

  /** Stops every child (in reverse start order). */
  async stopAll(graceMs = 3000): Promise<void> {
    await Promise.all([...this.children].reverse().map((c) => this.stop(c, graceMs)));
  }

  /** Kills synchronously, for process 'exit' handlers. */
  killAllNow(): void {
    for (const c of this.children) if (c.proc.exitCode === null) c.proc.kill('SIGKILL');
  }
}

/** Polls an HTTP(S) URL until it answers 2xx, or fails naming what did not come up; `creds` gives the CA (read at each try). */
export async function waitHttp(url: string, what: string, child?: Child, timeoutMs = 20_000, creds?: () => ApiCredentials): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exitedCode: number | null | undefined;
  void child?.exited.then((c) => (exitedCode = c));
  for (;;) {
    if (exitedCode !== undefined) {
      throw new Error(`${what} exited (code ${exitedCode}) while starting:\n${child!.stderrTail.slice(-10).join('\n')}`);
    }
    try {
      const r = await apiFetch(url, { timeoutMs: 1000 }, creds?.() ?? {});
      if (r.ok) return;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) {
      throw new Error(`${what} did not answer at ${url} within ${timeoutMs} ms${child ? ':\n' + child.stderrTail.slice(-10).join('\n') : ''}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
