import { spawn, type ChildProcess } from 'node:child_process';
import { cliEntry } from '../support/cli-command.ts';

/** An `aggjobs` command in its own process (built once per run: cli-command.ts), its stdout and stderr kept together. */
export interface CliProcess {
  readonly child: ChildProcess;
  output(): string;
  /** Resolves with the exit code (null: killed by a signal). */
  readonly exited: Promise<number | null>;
  /** Resolves once the output contains `text` (rejects after `timeoutMs` or at exit). */
  waitFor(text: string | RegExp, timeoutMs?: number): Promise<void>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export function spawnCli(args: string[], env: Record<string, string>, timeoutMs = 60_000): CliProcess {
  const child = spawn(process.execPath, [cliEntry, ...args], {
    env: { ...process.env, NODE_ENV: 'production', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  child.stdout?.on('data', (d: Buffer) => (text += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (text += d.toString()));
  const killer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      clearTimeout(killer);
      resolve(code);
    }),
  );
  const matches = (pattern: string | RegExp): boolean =>
    typeof pattern === 'string' ? text.includes(pattern) : pattern.test(text);
  return {
    child,
    output: () => text,
    exited,
    async waitFor(pattern, ms = 30_000) {
      const deadline = Date.now() + ms;
      let done = false;
      void exited.then(() => (done = true));
      while (!matches(pattern)) {
        if (done) throw new Error(`exited before printing ${String(pattern)}:\n${text}`);
        if (Date.now() > deadline) throw new Error(`no ${String(pattern)} within ${ms} ms:\n${text}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return await exited;
    },
  };
}
