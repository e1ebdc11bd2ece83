/**
 * How long `npm start` takes to reach the dashboard when nothing changed (issue 14: "a second start
 * reaches it in under 10 s"), against the start script it replaced (`npm run build && node
 * dist/cli/main.js start`, which rebuilt every time). A fresh clone of HEAD in a mode-700 directory,
 * `npm install`, one first start (build, initdb, seed); then interleaved pairs, the order swapped
 * every other pair: each start is timed from spawn to the dashboard's first 200 and stopped with
 * SIGINT to its process group (Ctrl-C). Prints medians with min–max and the median of the paired
 * ratios, and writes bench/results/start-time.md.
 *
 *   npx tsx bench/start-time.ts [pairs, default 5]
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('..', import.meta.url));
const pairs = Number(process.argv[2] ?? 5);

async function freePort(): Promise<number> {
  return await new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0));
    });
  });
}

function cleanEnv(port: number): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(DATABASE_URL|REDIS_URL|CELERY_|TEST_|AGGJOBS_|LOG_|DASHBOARD_|BROKER_|npm_)/.test(k)) continue;
    env[k] = v;
  }
  env.DASHBOARD_PORT = String(port);
  return env;
}

/** Starts `command` in `dir`, returns ms to the dashboard's first 200, then stops it with Ctrl-C. */
async function timeStart(dir: string, command: string): Promise<number> {
  const port = await freePort();
  const t0 = performance.now();
  const child = spawn('/bin/sh', ['-c', command], { cwd: dir, env: cleanEnv(port), detached: true });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise((r) => child.on('exit', r));
  let ms: number | undefined;
  while (performance.now() - t0 < 180_000) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/`)).status === 200) {
        ms = performance.now() - t0;
        break;
      }
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  process.kill(-(child.pid ?? 0), 'SIGINT');
  await exited;
  if (ms === undefined) throw new Error(`no dashboard from ${command}:\n${output}`);
  return ms;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[m] ?? 0) : ((s[m - 1] ?? 0) + (s[m] ?? 0)) / 2;
};
const fmt = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;

const dir = mkdtempSync(join(tmpdir(), 'aggjobs-start-time-'));
const app = join(dir, 'app');
try {
  execFileSync('git', ['clone', '-q', repo, app]);
  execFileSync('npm', ['install', '--no-audit', '--no-fund'], { cwd: app, stdio: 'ignore' });
  const first = await timeStart(app, 'npm start');
  const now: number[] = [];
  const before: number[] = [];
  const ratios: number[] = [];
  for (let i = 0; i < pairs; i++) {
    const order = i % 2 === 0 ? ['now', 'before'] : ['before', 'now'];
    const got: Record<string, number> = {};
    for (const which of order) {
      got[which] = await timeStart(
        app,
        which === 'now' ? 'npm start' : 'npm run build && node dist/cli/main.js start',
      );
    }
    now.push(got.now ?? 0);
    before.push(got.before ?? 0);
    ratios.push((got.now ?? 0) / (got.before ?? 1));
    process.stdout.write(`pair ${i + 1}: now ${fmt(got.now ?? 0)}, before ${fmt(got.before ?? 0)}\n`);
  }
  const marker = join(app, '.aggjobs', 'pgdata-location');
  const outside = existsSync(marker) ? readFileSync(marker, 'utf8').trim() : undefined;
  const report = [
    '# npm start: time to the dashboard when nothing changed',
    '',
    `Run ${new Date().toISOString()} on ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, load average ${loadavg()[0]?.toFixed(1)} at the end; ${process.getuid?.() === 0 ? 'as root' : 'as an ordinary user'}, a fresh clone of HEAD (${execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: repo }).toString().trim()}) in a mode-700 directory. ${pairs} interleaved pairs after one first start.`,
    '',
    '| start | median | min–max |',
    '|---|---|---|',
    `| first \`npm start\` (build, initdb, seed) | ${fmt(first)} | one run |`,
    `| \`npm start\` again (no build: dist/ is up to date) | ${fmt(median(now))} | ${fmt(Math.min(...now))}–${fmt(Math.max(...now))} |`,
    `| the former script, \`npm run build && node dist/cli/main.js start\` | ${fmt(median(before))} | ${fmt(Math.min(...before))}–${fmt(Math.max(...before))} |`,
    '',
    `Median of the paired ratios now ÷ before: ${median(ratios).toFixed(3)} (min–max ${Math.min(...ratios).toFixed(3)}–${Math.max(...ratios).toFixed(3)}). Goal: under 10 s.`,
    '',
    'Repeat: `npx tsx bench/start-time.ts 5`',
    '',
  ].join('\n');
  writeFileSync(join(repo, 'bench', 'results', 'start-time.md'), report);
  process.stdout.write(`\n${report}`);
  if (outside !== undefined) rmSync(join(outside, '..'), { recursive: true, force: true });
} finally {
  rmSync(dir, { recursive: true, force: true });
}
