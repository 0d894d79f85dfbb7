// Runs async work one piece at a time, in call order: for state that is
// changed on a copy, persisted, and only then made current (credentials, trust
// state, the audit chain). A failed piece does not stop the ones after it.

export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();

  /** Runs `fn` after everything queued before it; its result or error is the caller's. */
  run<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.tail.then(fn, fn);
    this.tail = p.catch(() => undefined);
    return p;
  }
}
