import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import pg, { escapeIdentifier } from 'pg';
import { pgdataOf, prepareLayout, type EmbeddedLayout } from './embedded-layout.ts';

const run = promisify(execFile);

export interface EmbeddedDatabase {
  /** Connection string of the `aggjobs` database on the embedded server. */
  readonly url: string;
  readonly port: number;
  /** The server's data directory: `<dataDir>/pgdata`, or where embedded-layout.ts put it. */
  readonly pgdata: string;
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
 * The connection string of the embedded server of `dataDir` (started by
 * `aggjobs start`), or undefined when none runs. Reads only: starts nothing, removes nothing.
 */
export function findRunningEmbeddedPostgres(options: {
  dataDir: string;
}): { url: string; port: number } | undefined {
  const dataDir = resolve(options.dataDir);
  const pidFile = join(pgdataOf(dataDir), 'postmaster.pid');
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
    if (rowCount === 0) await client.query(`CREATE DATABASE ${escapeIdentifier(name)}`);
  } finally {
    await client.end();
  }
}

/**
 * Writes the server's initial password where initdb (run as the server's user) can read it and
 * nobody else can: a private directory beside the data directory, removed once initdb is done.
 */
async function initialise(layout: EmbeddedLayout, passwordFile: string): Promise<void> {
  const { binaries, user, pgdata } = layout;
  rmSync(pgdata, { recursive: true, force: true });
  mkdirSync(pgdata, { recursive: true, mode: 0o700 });
  const password = randomBytes(18).toString('base64url');
  writeFileSync(passwordFile, `${password}\n`, { mode: 0o600 });
  const secretDir = mkdtempSync(join(dirname(pgdata), '.initdb-'));
  const pwfile = join(secretDir, 'password');
  writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
  if (user.uid !== undefined && user.gid !== undefined) {
    for (const path of [pgdata, secretDir, pwfile]) chownSync(path, user.uid, user.gid);
  }
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
      { ...user, cwd: '/', env: { ...process.env, LC_ALL: 'C' } },
    );
  } finally {
    rmSync(secretDir, { recursive: true, force: true });
  }
}

/**
 * Starts (or finds running) a real PostgreSQL server with its data under `<dataDir>/pgdata` (as
 * root, where the `postgres` user can reach it: see embedded-layout.ts), kept across restarts,
 * listening on 127.0.0.1 only, on a free port. The password is generated on first start and kept
 * in `<dataDir>/pgpass` (mode 0600).
 */
export async function startEmbeddedPostgres(options: {
  dataDir: string;
  onLog?: (line: string) => void;
}): Promise<EmbeddedDatabase> {
  const dataDir = resolve(options.dataDir);
  const onLog = options.onLog ?? ((): void => undefined);
  const layout = await prepareLayout(dataDir, onLog);
  const { binaries, user, pgdata, logFile } = layout;
  const passwordFile = join(dataDir, 'pgpass');
  // cwd: the server's user may not be able to enter this process's working directory.
  const asServer = { ...user, cwd: '/' };

  if (!existsSync(join(pgdata, 'PG_VERSION')) || !existsSync(passwordFile)) {
    onLog(`initialising a new embedded PostgreSQL in ${pgdata}`);
    await initialise(layout, passwordFile);
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
    writeFileSync(logFile, '', { flag: 'a', mode: 0o600 });
    if (user.uid !== undefined && user.gid !== undefined) chownSync(logFile, user.uid, user.gid);
    onLog(`starting embedded PostgreSQL on 127.0.0.1:${port} (data: ${pgdata})`);
    const serverOptions = `-p ${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c max_connections=200`;
    await run(
      binaries.pg_ctl,
      ['start', '--wait', '--timeout=60', '-D', pgdata, '-l', logFile, '-o', serverOptions],
      { ...asServer, env: { ...process.env, LC_ALL: 'C' } },
    );
  } else if (owned) {
    onLog(
      `adopting the embedded PostgreSQL left running on 127.0.0.1:${port} by a process that is gone (data: ${pgdata})`,
    );
  } else {
    onLog(`using the embedded PostgreSQL of process ${owner} on 127.0.0.1:${port} (data: ${pgdata})`);
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
        ...asServer,
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
    pgdata,
    startedHere,
    owned,
    async stop() {
      if (stopped) return;
      stopped = true;
      process.removeListener('exit', stopSync);
      if (owned) rmSync(ownerFile, { force: true });
      await run(binaries.pg_ctl, ['stop', '--wait', '-m', 'fast', '-D', pgdata], asServer).catch(
        () => undefined,
      );
    },
  };
}
