// The abortable sleep under meshfed identity run's renewal loop: no listener
// left on the signal per sleep (the loop sleeps every second for as long as the
// workload runs: issue 13 found MaxListenersExceededWarning after ~20 minutes),
// and an abort still cuts a sleep short. Pure timers.
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { test } from 'node:test';
import { abortableSleep } from '../../src/util/sleep.js';

test('a thousand sleeps on one signal leave no listener on it, and warn nothing', async () => {
  const ac = new AbortController();
  const warnings: Error[] = [];
  const onWarning = (w: Error) => warnings.push(w);
  process.on('warning', onWarning);
  try {
    for (let i = 0; i < 1000; i++) {
      await abortableSleep(0, ac.signal);
      assert.equal(getEventListeners(ac.signal, 'abort').length, 0, `after sleep ${i + 1}`);
    }
  } finally {
    process.off('warning', onWarning);
  }
  assert.deepEqual(
    warnings.map((w) => w.name),
    [],
  );
});

test('an abort ends a long sleep at once; an aborted signal does not sleep', async () => {
  const ac = new AbortController();
  const t0 = performance.now();
  const slept = abortableSleep(60_000, ac.signal);
  setTimeout(() => ac.abort(), 20);
  await slept;
  assert.ok(performance.now() - t0 < 5_000, 'cut short by the abort');
  const t1 = performance.now();
  await abortableSleep(60_000, ac.signal);
  assert.ok(performance.now() - t1 < 1_000);
});
