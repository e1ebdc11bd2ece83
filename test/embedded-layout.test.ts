/**
 * Where the embedded PostgreSQL's data goes when the server's OS user cannot reach the data
 * directory (as root, in a directory only root may enter), and the one line a user gets when it
 * cannot work. The full start from such a directory is test/deploy/front-door.test.ts.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EmbeddedPostgresError } from '../src/db/index.ts';
import { prepareLayout } from '../src/db/embedded-layout.ts';
import { runCli } from './cli/cli-runner.ts';

const isRoot = process.getuid?.() === 0;
const privateDir = mkdtempSync(join(tmpdir(), 'aggjobs-layout-')); // mode 700
const outside: string[] = [];

afterAll(() => {
  for (const dir of outside) rmSync(dir, { recursive: true, force: true });
  rmSync(privateDir, { recursive: true, force: true });
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
