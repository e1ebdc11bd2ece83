#!/usr/bin/env node
/**
 * `npm start`: builds dist/ only when the sources changed since the build this script last made
 * (a hash of src/ without its tests, package.json, the lock file and the tsconfigs, kept in
 * dist/.source-hash), then runs `aggjobs start` from dist/ in this process, with the arguments
 * given after `npm start --`.
 * Building costs about 20 s on a 2-core machine; a start without it reaches the dashboard in seconds.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import process from 'node:process';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const entry = join(root, 'dist', 'cli', 'main.js');
const stampFile = join(root, 'dist', '.source-hash');
const inputs = ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json'];

function sourceHash() {
  const hash = createHash('sha256');
  const add = (path) => {
    hash.update(path.slice(root.length));
    hash.update('\0');
    hash.update(readFileSync(path));
    hash.update('\0');
  };
  const walk = (dir) => {
    const entries = readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const entry of entries) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      // Tests are not built (tsconfig.build.json): changing one needs no build.
      else if (entry.isFile() && !entry.name.endsWith('.test.ts')) add(path);
    }
  };
  walk(join(root, 'src'));
  for (const file of inputs) if (existsSync(join(root, file))) add(join(root, file));
  return hash.digest('hex');
}

const current = sourceHash();
const built = existsSync(entry) && existsSync(stampFile) ? readFileSync(stampFile, 'utf8').trim() : '';
if (built !== current) {
  process.stderr.write(
    built === ''
      ? 'aggjobs: building dist/ (first start)\n'
      : 'aggjobs: building dist/ (the sources changed)\n',
  );
  try {
    execFileSync('npm', ['run', '-s', 'build'], { cwd: root, stdio: 'inherit' });
  } catch {
    process.stderr.write(
      'aggjobs: the build failed (its errors are above): fix them, then `npm start` again\n',
    );
    process.exit(1);
  }
  writeFileSync(stampFile, `${current}\n`);
}

process.argv = [process.argv[0] ?? process.execPath, entry, 'start', ...process.argv.slice(2)];
await import(pathToFileURL(entry).href);
