/**
 * Where the embedded PostgreSQL's data goes when the server's OS user cannot reach the data
 * directory (as root, in a directory only root may enter), and the one line a user gets when it
 * cannot work; as root, the OS user it runs as created when absent and the log saying so (a real
 * `useradd` of a user made for the test, removed after it). The full start from such a directory is
 * test/deploy/front-door.test.ts.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EmbeddedPostgresError } from '../src/db/index.ts';
import { prepareLayout, userCan } from '../src/db/embedded-layout.ts';
import { runCli } from './cli/cli-runner.ts';

const isRoot = process.getuid?.() === 0;
const privateDir = mkdtempSync(join(tmpdir(), 'aggjobs-layout-')); // mode 700
const outside: string[] = [];
/** A system user that does not exist before the test (checked), for the server to run as. */
const newUser = `aggjobs_t_${process.pid}`;

/** The user's uid, or undefined when there is no such user. */
function uidOf(name: string): number | undefined {
  try {
    return Number(execFileSync('id', ['-u', name], { stdio: ['ignore', 'pipe', 'ignore'] }).toString());
  } catch {
    return undefined;
  }
}

afterAll(() => {
  for (const dir of outside) rmSync(dir, { recursive: true, force: true });
  rmSync(privateDir, { recursive: true, force: true });
  if (isRoot && uidOf(newUser) !== undefined) execFileSync('userdel', [newUser], { stdio: 'ignore' });
});

describe('the embedded server in a directory only its owner may enter', () => {
  it(
    isRoot
      ? 'as root: the data goes under /var/lib/aggjobs, the log says so, and the marker tells later starts'
      : 'as an ordinary user: the data stays in place (the server runs as this user)',
    async () => {
      const dataDir = join(privateDir, 'fresh', '.aggjobs');
      const lines: string[] = [];
      const layout = await prepareLayout(dataDir, (line) => lines.push(line));
      if (!isRoot) {
        expect(layout.pgdata).toBe(join(dataDir, 'pgdata'));
        expect(layout.user).toEqual({});
        return;
      }
      outside.push(join(layout.pgdata, '..'));
      expect(layout.pgdata).toMatch(/^\/var\/lib\/aggjobs\/data-[0-9a-f]{12}\/pgdata$/);
      expect(lines.join('\n')).toContain(`the \`postgres\` user cannot reach ${dataDir}`);
      expect(readFileSync(join(dataDir, 'pgdata-location'), 'utf8').trim()).toBe(layout.pgdata);
      // The binaries it runs are where that user can run them.
      expect(layout.binaries.postgres.startsWith(privateDir)).toBe(false);
      // A second layout follows the marker and says nothing new about it.
      const again: string[] = [];
      expect((await prepareLayout(dataDir, (line) => again.push(line))).pgdata).toBe(layout.pgdata);
      expect(again.join('\n')).not.toContain('cannot reach');
    },
  );

  it.runIf(isRoot)(
    'as root, a database already in an unreachable ./.aggjobs: one line saying what to do, nothing moved',
    async () => {
      const dataDir = join(privateDir, 'existing', '.aggjobs');
      mkdirSync(join(dataDir, 'pgdata'), { recursive: true });
      writeFileSync(join(dataDir, 'pgdata', 'PG_VERSION'), '18\n');
      const error = await prepareLayout(dataDir, () => undefined).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(EmbeddedPostgresError);
      const message = (error as Error).message;
      expect(message.split('\n')).toHaveLength(1);
      expect(message).toContain(`cannot reach the embedded database in ${join(dataDir, 'pgdata')}`);
      expect(message).toMatch(/chmod o\+x|move/);
      expect(existsSync(join(dataDir, 'pgdata-location'))).toBe(false);

      // The same through the command line: exit 1, that one line, no stack.
      const out = await runCli(['migrate'], {
        DATABASE_URL: '',
        AGGJOBS_DATA_DIR: dataDir,
        LOG_LEVEL: 'warn',
      });
      expect(out.status).toBe(1);
      expect(out.stderr.trim().split('\n')).toEqual([`aggjobs: ${message}`]);
    },
  );
});

describe('the OS user the embedded server runs as', () => {
  it(
    isRoot
      ? 'as root, a user that does not exist is created, and the log says so (once)'
      : 'as an ordinary user, no OS user is created: the server runs as this user',
    async () => {
      expect(uidOf(newUser), `${newUser} exists before the test`).toBeUndefined();
      // A directory everyone may enter, so the data stays in place whoever the server runs as.
      const shared = mkdtempSync(join(tmpdir(), 'aggjobs-layout-user-'));
      chmodSync(shared, 0o755);
      outside.push(shared);
      const lines: string[] = [];
      const layout = await prepareLayout(join(shared, 'a', '.aggjobs'), (line) => lines.push(line), newUser);
      if (!isRoot) {
        expect(layout.user).toEqual({});
        expect(lines.join('\n')).not.toContain('creating the OS user');
        expect(uidOf(newUser)).toBeUndefined();
        return;
      }
      const uid = uidOf(newUser);
      expect(uid, `${newUser} was not created`).toBeDefined();
      expect(layout.user.uid).toBe(uid);
      expect(lines).toContain(
        `creating the OS user \`${newUser}\` (a system user without login or home) to run the embedded PostgreSQL: PostgreSQL refuses to run as root`,
      );
      // Without a login or a home, as the line says; and it can run the server's binaries and enter its data.
      const entry = execFileSync('getent', ['passwd', newUser]).toString().trim().split(':');
      const home = entry[5] ?? '';
      expect(existsSync(home), `home ${home}`).toBe(false);
      expect(entry[6]).toMatch(/^\/(usr\/sbin\/nologin|bin\/false)$/);
      expect(userCan(layout.user, '-x', layout.binaries.postgres)).toBe(true);
      expect(layout.pgdata).toBe(join(shared, 'a', '.aggjobs', 'pgdata'));

      // The user exists now: a second layout takes it and says nothing about creating one.
      const again: string[] = [];
      const second = await prepareLayout(join(shared, 'b', '.aggjobs'), (line) => again.push(line), newUser);
      expect(second.user).toEqual(layout.user);
      expect(again.join('\n')).not.toContain('creating the OS user');
    },
  );
});
