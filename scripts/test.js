// The test runner behind `npm test` (after the checks and the build): two
// phases of `node --test` over the compiled tests in dist/test.
//   1. two files at a time: the unit tests and the end-to-end files that
//      measure no time or rate (CLI behaviour, packaging, schemas, fuzzing,
//      trust and join refusals, the README walkthrough);
//   2. one file at a time: every other end-to-end file. They run real fleets
//      and assert rates, splits, failover times and zero failed calls, which a
//      second file competing for this machine's two cores would distort.
// A new end-to-end file is serial unless it is listed here: the safe default.
// Both phases always run; the exit code is non-zero if either failed.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const PARALLEL_E2E = ['api-fuzz', 'auth', 'cli', 'hub-kubernetes-policies', 'image-runtime', 'install-cli', 'kube-standin', 'kube-standin-crds', 'package', 'readme-walkthrough', 'trust'];

function testFiles(dir) {
  const abs = join(root, dir);
  return readdirSync(abs, { recursive: true })
    .filter((f) => String(f).endsWith('.test.js'))
    .map((f) => join(dir, String(f)))
    .sort();
}

const unit = testFiles('dist/test/unit');
const e2e = testFiles('dist/test/e2e');
const parallel = PARALLEL_E2E.map((n) => join('dist/test/e2e', `${n}.test.js`));
for (const f of parallel) if (!existsSync(join(root, f))) throw new Error(`scripts/test.js lists ${f}, which does not exist: update PARALLEL_E2E`);
const serial = e2e.filter((f) => !parallel.includes(f));

function phase(name, concurrency, files) {
  const t0 = Date.now();
  const r = spawnSync(process.execPath, ['--test', `--test-concurrency=${concurrency}`, ...files], { cwd: root, stdio: 'inherit' });
  const s = ((Date.now() - t0) / 1000).toFixed(1);
  process.stdout.write(`# phase ${name}: ${files.length} files, ${concurrency} at a time, ${s} s, exit ${r.status ?? r.signal}\n`);
  return r.status === 0;
}

const ok1 = phase('parallel (unit + untimed e2e)', 2, [...unit, ...parallel]);
const ok2 = phase('serial (timed e2e)', 1, serial);
process.exit(ok1 && ok2 ? 0 : 1);
