import { fileURLToPath } from 'node:url';

/**
 * The `aggjobs` command the tests spawn: src/ transpiled into .test-dist/ once per run by the global
 * setup (`build-cli.ts`), instead of `node --import tsx src/cli/main.ts` paying tsx's loader and
 * transpiling in every process (about 1.5 s of CPU a start; the suite spawns hundreds).
 */
export const cliEntry = fileURLToPath(new URL('../../.test-dist/cli/main.js', import.meta.url));
