// The real CLI as a child process (dist build), for end-to-end tests that check
// what a user sees: stdout, stderr and the exit code.
import { spawn } from 'node:child_process';
import { meshfedBin } from '../../src/demo/processes.js';

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `meshfed ...args` with `env` over this process's environment; `input` goes to stdin. */
export function runMeshfed(args: string[], env: Record<string, string>, input = ''): Promise<CliResult> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [meshfedBin(), ...args], { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.stdin.end(input);
    p.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}
