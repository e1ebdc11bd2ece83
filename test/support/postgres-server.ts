import { execFile, execFileSync } from 'node:child_process';
import {
  chownSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import { freePort, isAlive } from './processes.ts';

/**
 * PostgreSQL installed on the machine (not the npm package's embedded one): a throwaway cluster of
 * it for a test run, and its client tools (pg_dump, pg_restore) matched to a server's version.
 */

const run = promisify(execFile);

/** Where PostgreSQL installs put a major version's programs: Debian/Ubuntu, RHEL/Fedora, Homebrew. */
function binDirsOf(major: number): string[] {
  return [
    `/usr/lib/postgresql/${major}/bin`,
    `/usr/pgsql-${major}/bin`,
    `/opt/homebrew/opt/postgresql@${major}/bin`,
    `/usr/local/opt/postgresql@${major}/bin`,
  ];
}

/** The major version a PostgreSQL program prints (`pg_dump (PostgreSQL) 15.20 (Debian …)`). */
function majorOf(program: string): number | undefined {
  try {
    const out = execFileSync(program, ['--version'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const match = /\(PostgreSQL\)\s+(\d+)/.exec(out);
    return match === null ? undefined : Number(match[1]);
  } catch {
    return undefined;
  }
}

function onPath(program: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir !== '' && existsSync(join(dir, program))) return join(dir, program);
  }
  return undefined;
}

/** Installed majors that have a directory of their own (Debian's /usr/lib/postgresql/<N>). */
function installedMajors(): number[] {
  const majors = new Set<number>();
  for (const root of ['/usr/lib/postgresql']) {
    if (!existsSync(root)) continue;
    for (const name of readdirSync(root)) if (/^\d+$/.test(name)) majors.add(Number(name));
  }
  for (const name of existsSync('/usr') ? readdirSync('/usr') : []) {
    const match = /^pgsql-(\d+)$/.exec(name);
    if (match !== null) majors.add(Number(match[1]));
  }
  return [...majors].sort((a, b) => b - a);
}

export interface InstalledServer {
  readonly binDir: string;
  readonly major: number;
}

/**
 * The newest PostgreSQL server installed on the machine: TEST_PG_BINDIR when set, else the newest
 * /usr/lib/postgresql/<N>/bin or /usr/pgsql-<N>/bin with initdb, pg_ctl and postgres, else the
 * ones on PATH. Undefined when there is none.
 */
export function findInstalledServer(env: NodeJS.ProcessEnv = process.env): InstalledServer | undefined {
  const hasServer = (dir: string): boolean =>
    ['initdb', 'pg_ctl', 'postgres'].every((p) => existsSync(join(dir, p)));
  const given = env.TEST_PG_BINDIR;
  const dirs =
    given !== undefined && given !== ''
      ? [given]
      : installedMajors().flatMap((major) => binDirsOf(major).slice(0, 2));
  if (given === undefined || given === '') {
    const initdb = onPath('initdb');
    if (initdb !== undefined) dirs.push(join(initdb, '..'));
  }
  for (const dir of dirs) {
    if (!hasServer(dir)) continue;
    const major = majorOf(join(dir, 'postgres'));
    if (major !== undefined) return { binDir: dir, major };
  }
  return undefined;
}

/** PostgreSQL refuses to run as root: as root, the server runs as the `postgres` system user. */
function serverUser(): { uid?: number; gid?: number } | undefined {
  if (process.getuid?.() !== 0) return {};
  try {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    return { uid, gid };
  } catch {
    return undefined;
  }
}

/** Data directories of this harness carry the pid of the run that made them. */
const DIR_PREFIX = 'aggjobs-test-pg-';

export interface TemporaryCluster {
  /** `postgres://postgres@127.0.0.1:<port>/postgres` (trust on loopback) */
  readonly url: string;
  readonly major: number;
  stop(): Promise<void>;
}

/**
 * A throwaway cluster of an installed PostgreSQL for one test run: initdb into a temporary
 * directory (superuser `postgres`, trust on loopback), a free loopback port, no Unix socket,
 * durability off (the data is thrown away); stopped and removed by `stop()`, and by the next run
 * when this one was killed first. Undefined when, as root, there is no `postgres` user to run it.
 */
export async function startTemporaryCluster(
  server: InstalledServer,
  /** More postgresql.conf lines, e.g. `wal_level = logical`. */
  settings: readonly string[] = [],
): Promise<TemporaryCluster | undefined> {
  const user = serverUser();
  if (user === undefined) return undefined;
  const pgCtl = join(server.binDir, 'pg_ctl');
  for (const name of readdirSync(tmpdir())) {
    if (!name.startsWith(DIR_PREFIX)) continue;
    const owner = Number(name.slice(DIR_PREFIX.length).split('-')[0]);
    if (!Number.isInteger(owner) || isAlive(owner)) continue;
    const dir = join(tmpdir(), name);
    if (existsSync(join(dir, 'data', 'postmaster.pid')))
      await run(pgCtl, ['-D', join(dir, 'data'), '-m', 'immediate', '-w', 'stop'], user).catch(
        () => undefined,
      );
    rmSync(dir, { recursive: true, force: true });
  }
  const root = mkdtempSync(join(tmpdir(), `${DIR_PREFIX}${process.pid}-`));
  if (user.uid !== undefined && user.gid !== undefined) chownSync(root, user.uid, user.gid);
  writeFileSync(join(root, 'README'), 'data directory of a PostgreSQL for one test run; removed after it\n');
  const dataDir = join(root, 'data');
  const asServer = { ...user, cwd: root, env: { ...process.env, LC_ALL: 'C' } };
  await run(
    join(server.binDir, 'initdb'),
    ['-D', dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-sync'],
    asServer,
  );
  const port = await freePort();
  await appendFile(
    join(dataDir, 'postgresql.conf'),
    [
      `port = ${port}`,
      "listen_addresses = '127.0.0.1'",
      "unix_socket_directories = ''",
      'max_connections = 200',
      'fsync = off',
      'full_page_writes = off',
      ...settings,
      '',
    ].join('\n'),
  );
  const logFile = join(root, 'server.log');
  try {
    await run(pgCtl, ['-D', dataDir, '-l', logFile, '-w', '-t', '60', 'start'], asServer);
  } catch (error) {
    const log = existsSync(logFile) ? readFileSync(logFile, 'utf8').slice(-2000) : '';
    rmSync(root, { recursive: true, force: true });
    throw new Error(
      `PostgreSQL ${server.major} from ${server.binDir} did not start: ${String(error)}\n${log}`,
    );
  }
  const stopSync = (): void => {
    try {
      execFileSync(pgCtl, ['-D', dataDir, '-m', 'immediate', '-w', 'stop'], { ...asServer, stdio: 'ignore' });
    } catch {
      // already stopped
    }
    rmSync(root, { recursive: true, force: true });
  };
  // A run that exits without its teardown still stops its server.
  process.once('exit', stopSync);
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    major: server.major,
    async stop() {
      process.off('exit', stopSync);
      await run(pgCtl, ['-D', dataDir, '-m', 'fast', '-w', 'stop'], asServer).catch(() => undefined);
      rmSync(root, { recursive: true, force: true });
    },
  };
}

export interface PgTools {
  readonly pgDump: string;
  readonly pgRestore: string;
  readonly major: number;
}

/**
 * pg_dump and pg_restore for a server of major version `serverMajor`: the same major's from an
 * installed PostgreSQL (TEST_PG_BINDIR, /usr/lib/postgresql/<N>/bin, /usr/pgsql-<N>/bin, Homebrew),
 * else the ones on PATH when they are of that major or newer (pg_dump refuses a newer server).
 * None: one line saying what to install (the caller fails with it).
 */
export function findPgTools(serverMajor: number, env: NodeJS.ProcessEnv = process.env): PgTools | string {
  const given = env.TEST_PG_BINDIR;
  const dirs = [...(given !== undefined && given !== '' ? [given] : []), ...binDirsOf(serverMajor)];
  for (const dir of dirs) {
    const pgDump = join(dir, 'pg_dump');
    const pgRestore = join(dir, 'pg_restore');
    if (!existsSync(pgDump) || !existsSync(pgRestore)) continue;
    const major = majorOf(pgDump);
    if (major !== undefined && major >= serverMajor) return { pgDump, pgRestore, major };
  }
  const pgDump = onPath('pg_dump');
  const pgRestore = onPath('pg_restore');
  const major = pgDump === undefined ? undefined : majorOf(pgDump);
  if (pgDump !== undefined && pgRestore !== undefined && major !== undefined && major >= serverMajor)
    return { pgDump, pgRestore, major };
  const found = major === undefined ? 'none on PATH' : `PATH has version ${major}`;
  return `no pg_dump/pg_restore for the test server's PostgreSQL ${serverMajor} (${found}): install its client tools (Debian/Ubuntu: postgresql-client-${serverMajor}; macOS: brew install postgresql@${serverMajor}), set TEST_PG_BINDIR to their directory, or point TEST_DATABASE_URL at a server of your pg_dump's version`;
}
