// A sleep that an AbortSignal cuts short. It removes its abort listener when
// the time is up: a long-running loop (meshfed identity run polls every
// second) must not leave one listener per sleep on its signal, which grew
// without bound and warned MaxListenersExceededWarning after a while.

/** Resolves after `ms`, or at once when `signal` aborts (never rejects). */
export function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
