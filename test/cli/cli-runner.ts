import { spawn } from 'node:child_process';
import { cliEntry } from '../support/cli-command.ts';

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `aggjobs <args>` (built once per run: cli-command.ts) to its end; a process still running after `timeoutMs` is killed. */
export function runCli(args: string[], env: Record<string, string>, timeoutMs = 40_000): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cliEntry, ...args], {
      env: { ...process.env, NODE_ENV: 'production', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const killer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', (status) => {
      clearTimeout(killer);
      resolve({ status, stdout, stderr });
    });
  });
}
