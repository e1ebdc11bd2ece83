import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Plugin } from 'esbuild';
import { cliEntry } from './cli-command.ts';

/**
 * src/ transpiled file by file with esbuild, as tsx does at each start (so the code run is the
 * same), into .test-dist/: at src/'s depth, so the code's paths relative to itself (package.json,
 * migrations/) hold.
 */
const root = fileURLToPath(new URL('../../', import.meta.url));
const outDir = join(root, '.test-dist');
const stampFile = join(outDir, '.source-hash');

function sourceFiles(): string[] {
  return readdirSync(join(root, 'src'), { recursive: true, encoding: 'utf8' })
    .filter((file) => file.endsWith('.ts') && !file.endsWith('.test.ts'))
    .sort()
    .map((file) => join(root, 'src', file));
}

function sourceHash(files: readonly string[]): string {
  const hash = createHash('sha256');
  for (const file of files) hash.update(file).update('\0').update(readFileSync(file)).update('\0');
  return hash.digest('hex');
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

/**
 * Builds .test-dist/ unless it holds the build of the current sources; a new build goes to a
 * directory of its own first and then takes the place of the old one, so no process ever starts
 * from half a build.
 */
async function buildCli(): Promise<'built' | 'up to date'> {
  const files = sourceFiles();
  const hash = sourceHash(files);
  if (existsSync(stampFile) && readFileSync(stampFile, 'utf8') === hash && existsSync(cliEntry)) {
    return 'up to date';
  }
  const fresh = `${outDir}.${process.pid}`;
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
  writeFileSync(join(fresh, '.source-hash'), hash);
  rmSync(outDir, { recursive: true, force: true });
  renameSync(fresh, outDir);
  return 'built';
}

/** Global setup: the tests' `aggjobs` command (`cli-command.ts`) is built before any file runs. */
export default async function setup(): Promise<void> {
  const started = Date.now();
  const outcome = await buildCli();
  process.stderr.write(`test cli: .test-dist/ ${outcome} (${Date.now() - started} ms)\n`);
}
