/**
 * The README's two commands as a new user runs them (issue 14's "done when"): a fresh clone of this
 * repository's HEAD in a directory only its owner can enter (`mktemp -d`, mode 700; as root on CI,
 * where the embedded PostgreSQL must run as the `postgres` user that cannot enter it), then the
 * README's `npm install` and `npm start` exactly as written, with nothing configured. Checked: the
 * dashboard serves, `aggjobs db url` reaches the embedded database with its demo data, Ctrl-C (SIGINT
 * to the whole process group, as a terminal sends it) stops everything and leaves no process behind;
 * then a second start, stopped the same way. As root it does it twice: as root in the private
 * directory, and as an ordinary user (made for the test, removed after it) in their home. How long the second start takes is printed, not asserted
 * (timing belongs to benchmarks): see docs/operations.md for the figure measured.
 *
 * What it clones is HEAD: commit before running it on a change.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const readme = readFileSync(join(repo, 'README.md'), 'utf8');

/** The shell block under the README's "Two commands" heading. */
function twoCommands(): string[] {
  const start = readme.indexOf('## Two commands');
  const block = /```sh\n([\s\S]*?)```/.exec(readme.slice(start))?.[1] ?? '';
  return block
    .split('\n')
    .map((l) => l.replace(/#.*$/, '').trim())
    .filter((l) => l !== '');
}

/** The environment of a new user: none of aggjobs' settings, none of the test harness's. */
function userEnv(port: number): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (
      /^(DATABASE_URL|REDIS_URL|CELERY_|TEST_|AGGJOBS_|LOG_|APP_ENV|DASHBOARD_|BROKER_|VITEST|NODE_ENV|npm_)/.test(
        key,
      )
    )
      continue;
    env[key] = value;
  }
  // The one change: the dashboard's port, so a dashboard already running on 5555 does not collide.
  env.DASHBOARD_PORT = String(port);
  return env;
}

async function freePort(): Promise<number> {
  return await new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0));
    });
  });
}

/** Every process whose command line or working directory mentions one of `paths`. */
function processesUnder(paths: string[]): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    if (Number(pid) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
      let cwd = '';
      try {
        cwd = readlinkSync(`/proc/${pid}/cwd`);
      } catch {
        // a process of another user, or gone
      }
      if (paths.some((p) => cmdline.includes(p) || cwd.startsWith(p))) found.push(`${pid} ${cmdline}`);
    } catch {
      // gone
    }
  }
  return found;
}

interface Started {
  child: ChildProcess;
  output: () => string;
  /** npm's exit: a code, or the signal it was ended by (npm ends itself with SIGINT on Ctrl-C). */
  exited: Promise<number | string | null>;
}

function npmStart(
  dir: string,
  env: NodeJS.ProcessEnv,
  command: string,
  as: { uid?: number; gid?: number },
): Started {
  const [bin, ...args] = command.split(/\s+/);
  // detached: a process group of its own, so the test can signal it as a terminal's Ctrl-C does.
  const child = spawn(bin ?? 'npm', args, { cwd: dir, env, detached: true, ...as });
  let output = '';
  child.stdout?.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<number | string | null>((resolve) =>
    child.on('exit', (code, signal) => resolve(code ?? signal)),
  );
  return { child, output: () => output, exited };
}

/** Polls the dashboard until it answers 200; the time it took, in ms. */
async function waitForDashboard(port: number, started: Started, timeoutMs: number): Promise<number> {
  const t0 = Date.now();
  let exitedWith: number | string | null | undefined;
  void started.exited.then((code) => (exitedWith = code));
  while (Date.now() - t0 < timeoutMs) {
    if (exitedWith !== undefined) throw new Error(`npm start exited (${exitedWith}):\n${started.output()}`);
    try {
      const response = await fetch(`http://127.0.0.1:${port}/`);
      if (response.status === 200) return Date.now() - t0;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the dashboard did not answer on port ${port} in ${timeoutMs} ms:\n${started.output()}`);
}

/** Ctrl-C: SIGINT to the process group; the exit code of npm, or 'hung'. */
async function ctrlC(started: Started): Promise<number | string | null> {
  process.kill(-(started.child.pid ?? 0), 'SIGINT');
  return await Promise.race([
    started.exited,
    new Promise<'hung'>((r) => setTimeout(() => r('hung'), 60_000)),
  ]);
}

/** Who runs the two commands, and where. */
interface Case {
  name: string;
  /** The directory the clone goes into (`<dir>/app`). */
  dir: string;
  /** Set: run as this OS user, with this home. */
  user?: { uid: number; gid: number; home: string; name: string };
}

const isRoot = process.getuid?.() === 0;
const privateDir = mkdtempSync(join(tmpdir(), 'aggjobs-front-door-'));
const cases: Case[] = [
  { name: `as ${isRoot ? 'root' : 'this user'} in a mode-700 directory`, dir: privateDir },
];
let ordinary: Case['user'];

/**
 * The users earlier runs of this test made and could not remove (a run killed before its afterAll):
 * `aggjobs-fd-<pid>` whose process is gone, removed with their home. One still running is left alone,
 * and so is one with processes left (userdel refuses).
 */
function removeStaleUsers(): void {
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const pid = /^aggjobs-fd-(\d+):/.exec(line)?.[1];
    if (pid === undefined || existsSync(`/proc/${pid}`)) continue;
    try {
      execFileSync('userdel', ['--remove', `aggjobs-fd-${pid}`], { stdio: 'ignore' });
    } catch {
      // processes of it are left: kept
    }
  }
}

if (isRoot) {
  // An ordinary user in their home, made for the test and removed after it.
  removeStaleUsers();
  const name = `aggjobs-fd-${process.pid}`;
  execFileSync('useradd', ['--create-home', '--shell', '/bin/sh', name]);
  const id = (flag: string): number => Number(execFileSync('id', [flag, name]).toString());
  ordinary = { uid: id('-u'), gid: id('-g'), home: join('/home', name), name };
  cases.push({ name: 'as an ordinary user in their home', dir: ordinary.home, user: ordinary });
}
const pgdatas: string[] = [];
const leftovers: Started[] = [];

afterAll(() => {
  for (const s of leftovers) {
    try {
      process.kill(-(s.child.pid ?? 0), 'SIGKILL');
    } catch {
      // already gone
    }
  }
  for (const pgdata of pgdatas) {
    // A server a failed run left behind: stopped through its pid file.
    const pidFile = join(pgdata, 'postmaster.pid');
    if (existsSync(pidFile)) {
      try {
        process.kill(Number(readFileSync(pidFile, 'utf8').split('\n')[0]), 'SIGTERM');
      } catch {
        // gone
      }
    }
    // Its data, when it was laid outside the private directory (as root): /var/lib/aggjobs/data-<hash>.
    if (pgdata.startsWith('/var/lib/aggjobs/')) rmSync(join(pgdata, '..'), { recursive: true, force: true });
  }
  rmSync(privateDir, { recursive: true, force: true });
  if (ordinary !== undefined) {
    try {
      execFileSync('userdel', ['--remove', ordinary.name], { stdio: 'ignore' });
    } catch {
      rmSync(ordinary.home, { recursive: true, force: true });
    }
  }
});

/**
 * `npm install` needs the npm registry, as it does for a new user. Without it (a network namespace
 * of its own, no route) npm retries for minutes: fail at once instead, saying why.
 */
async function assertRegistryReachable(): Promise<void> {
  const registry = execFileSync('npm', ['config', 'get', 'registry']).toString().trim();
  try {
    await fetch(registry, { method: 'HEAD', signal: AbortSignal.timeout(15_000) });
  } catch (error) {
    throw new Error(
      `the npm registry (${registry}) cannot be reached (${(error as Error).message}): this test runs \`npm install\` from a fresh clone, so it needs the registry`,
    );
  }
}

describe('README: the two commands, from a fresh clone', () => {
  it.each(cases)(
    '$name: npm install && npm start serves the dashboard; Ctrl-C stops everything; a second start too',
    async ({ dir, user }) => {
      await assertRegistryReachable();
      const commands = twoCommands();
      expect(commands[0]).toBe('npm install && npm start');
      const [install, start] = commands[0]?.split(' && ') ?? [];
      const app = join(dir, 'app');
      if (user === undefined) expect(statSync(dir).mode & 0o777).toBe(0o700);
      execFileSync('git', ['clone', '-q', repo, app]);
      if (user !== undefined) execFileSync('chown', ['-R', `${user.uid}:${user.gid}`, app]);
      const as = user === undefined ? {} : { uid: user.uid, gid: user.gid };
      const envFor = (port: number): NodeJS.ProcessEnv =>
        user === undefined
          ? userEnv(port)
          : { ...userEnv(port), HOME: user.home, USER: user.name, LOGNAME: user.name };
      execFileSync(install ?? 'npm install', {
        cwd: app,
        shell: '/bin/sh',
        env: envFor(0),
        stdio: 'pipe',
        timeout: 300_000,
        ...as,
      });

      const port = await freePort();
      const first = npmStart(app, envFor(port), start ?? 'npm start', as);
      leftovers.push(first);
      const firstMs = await waitForDashboard(port, first, 300_000);
      const page = await (await fetch(`http://127.0.0.1:${port}/`)).text();
      expect(page).toContain('aggjobs');

      // The database the log's URL names, reached the way the README says (`aggjobs db url`).
      const url = execFileSync('node', ['dist/cli/main.js', 'db', 'url'], {
        cwd: app,
        env: envFor(port),
        ...as,
      })
        .toString()
        .trim();
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      const { rows } = await client.query<{ n: string }>('SELECT count(*) AS n FROM public.execution_logs');
      await client.end();
      expect(Number(rows[0]?.n)).toBeGreaterThan(0);

      const marker = join(app, '.aggjobs', 'pgdata-location');
      const pgdata = existsSync(marker)
        ? readFileSync(marker, 'utf8').trim()
        : join(app, '.aggjobs', 'pgdata');
      pgdatas.push(pgdata);
      if (isRoot && user === undefined) {
        // The postgres user cannot enter a mode-700 directory: the log says where the data went.
        expect(first.output()).toContain('cannot reach');
        expect(pgdata.startsWith('/var/lib/aggjobs/')).toBe(true);
      } else {
        // Its own user runs the server, in place.
        expect(first.output()).not.toContain('cannot reach');
        expect(pgdata).toBe(join(app, '.aggjobs', 'pgdata'));
      }
      expect(statSync(join(app, '.aggjobs', 'pgpass')).mode & 0o077).toBe(0);
      const watched = [app, pgdata];
      expect(processesUnder(watched).length).toBeGreaterThan(0);

      const firstExit = await ctrlC(first);
      expect([0, 'SIGINT'], first.output()).toContain(firstExit);
      // One Ctrl-C is one signal to aggjobs (npm does not forward a second one): a clean stop.
      expect(first.output()).toContain('SIGINT: stopping');
      expect(first.output()).not.toContain('second signal');
      expect(first.output()).toMatch(/worker \S+ stopped/);
      expect(processesUnder(watched), first.output()).toEqual([]);

      const second = npmStart(app, envFor(port), start ?? 'npm start', as);
      leftovers.push(second);
      const secondMs = await waitForDashboard(port, second, 120_000);
      expect(second.output()).not.toContain('building dist/');
      expect(second.output()).not.toContain('seeding demo data');
      const secondExit = await ctrlC(second);
      expect([0, 'SIGINT'], second.output()).toContain(secondExit);
      expect(second.output()).toMatch(/worker \S+ stopped/);
      expect(processesUnder(watched), second.output()).toEqual([]);
      process.stdout.write(
        `front door (${user === undefined ? (isRoot ? 'root' : 'this user') : user.name}): first start ${(firstMs / 1000).toFixed(1)} s to the dashboard (build and seed), second ${(secondMs / 1000).toFixed(1)} s\n`,
      );
    },
    600_000,
  );
});
