import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, version, type Plugin } from 'esbuild';

/**
 * src/ transpiled file by file with esbuild, as tsx does at each start (so the code run is the
 * same), into .test-dist-<hash of the sources>/: at src/'s depth, so the code's paths relative to
 * itself (package.json, migrations/) hold. A build is never replaced: another vitest run in the
 * same checkout keeps the one its processes run from.
 */
const root = fileURLToPath(new URL('../../', import.meta.url));

function sourceFiles(): string[] {
  return readdirSync(join(root, 'src'), { recursive: true, encoding: 'utf8' })
    .filter((file) => file.endsWith('.ts') && !file.endsWith('.test.ts'))
    .sort()
    .map((file) => join(root, 'src', file));
}

function buildHash(files: readonly string[]): string {
  const hash = createHash('sha256').update(version).update('\0');
  const inputs = [...files, join(root, 'tsconfig.json'), fileURLToPath(import.meta.url)];
  for (const file of inputs) hash.update(file).update('\0').update(readFileSync(file)).update('\0');
  return hash.digest('hex').slice(0, 16);
}

/** Each relative `./x.ts` import becomes `./x.js`, left to Node; packages stay in node_modules. */
const relativeImportsAsJs: Plugin = {
  name: 'relative-imports-as-js',
  setup(builder) {
    builder.onResolve({ filter: /^\.\.?\/.*\.ts$/ }, (args) => ({
      path: args.path.replace(/\.ts$/, '.js'),
      external: true,
    }));
  },
};

/** Builds of other sources not used for an hour: no run still starts processes from them. */
function pruneOldBuilds(keep: string): void {
  for (const name of readdirSync(root)) {
    const path = join(root, name);
    if (!name.startsWith('.test-dist-') || path === keep) continue;
    // A run that uses a build touches its .complete (a directory's own time moves only with its entries).
    const stamp = join(path, '.complete');
    const used = statSync(existsSync(stamp) ? stamp : path).mtimeMs;
    if (Date.now() - used > 3_600_000) rmSync(path, { recursive: true, force: true });
  }
}

async function buildCli(): Promise<{ dir: string; outcome: 'built' | 'up to date' }> {
  const files = sourceFiles();
  const dir = join(root, `.test-dist-${buildHash(files)}`);
  const done = join(dir, '.complete');
  if (existsSync(done)) {
    writeFileSync(done, new Date().toISOString());
    return { dir, outcome: 'up to date' };
  }
  const fresh = `${dir}.${process.pid}`;
  rmSync(fresh, { recursive: true, force: true });
  await build({
    entryPoints: files,
    outdir: fresh,
    outbase: join(root, 'src'),
    bundle: true,
    packages: 'external',
    plugins: [relativeImportsAsJs],
    format: 'esm',
    platform: 'node',
    target: 'node20',
    logLevel: 'error',
  });
  writeFileSync(join(fresh, '.complete'), new Date().toISOString());
  try {
    renameSync(fresh, dir);
  } catch (error) {
    // Another run built the same sources first: its build is the same.
    rmSync(fresh, { recursive: true, force: true });
    if (!existsSync(done)) throw error;
  }
  return { dir, outcome: 'built' };
}

/** Global setup: the tests' `aggjobs` command (`cli-command.ts`) is built before any file runs. */
export default async function setup(): Promise<void> {
  const started = Date.now();
  const { dir, outcome } = await buildCli();
  pruneOldBuilds(dir);
  process.env.AGGJOBS_TEST_CLI = join(dir, 'cli', 'main.js');
  process.stderr.write(`test cli: ${dir.slice(root.length)} ${outcome} (${Date.now() - started} ms)\n`);
}
