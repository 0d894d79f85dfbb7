// The real kubectl, bound to one kubeconfig, for tests that drive a stand-in
// Kubernetes API server as a user would. HAVE_KUBECTL / KUBECTL_SKIP let a test
// file skip, saying why, on a machine without kubectl (.ci/run installs it).
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { join } from 'node:path';

export const HAVE_KUBECTL = spawnSync('kubectl', ['version', '--client'], { stdio: 'ignore' }).status === 0;
export const KUBECTL_SKIP: string | false = HAVE_KUBECTL ? false : 'kubectl is not installed (Debian package kubernetes-client; .ci/run installs it)';

export interface KubectlRun {
  code: number;
  stdout: string;
  stderr: string;
}

export class Kubectl {
  constructor(
    readonly kubeconfig: string,
    private readonly cacheDir: string,
  ) {}

  /** Runs kubectl with the given arguments (and standard input), never throwing. */
  run(args: string[], input?: string): Promise<KubectlRun> {
    return new Promise((resolve) => {
      const child = execFile('kubectl', ['--kubeconfig', this.kubeconfig, '--cache-dir', join(this.cacheDir, 'kubectl-cache'), ...args], { timeout: 20_000 }, (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      });
      if (input !== undefined) child.stdin?.end(input);
    });
  }

  /** Runs kubectl and asserts exit 0; returns its standard output. */
  async ok(args: string[], input?: string): Promise<string> {
    const r = await this.run(args, input);
    assert.equal(r.code, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  }

  /** kubectl apply -f - of YAML text. */
  apply(yaml: string): Promise<string> {
    return this.ok(['apply', '-f', '-'], yaml);
  }
}
