/**
 * The `aggjobs` command the tests spawn: src/ transpiled once per change of the sources by the
 * global setup (`build-cli.ts`, which says where in AGGJOBS_TEST_CLI), instead of
 * `node --import tsx src/cli/main.ts` paying tsx's loader and transpiling in every process (about
 * 1.5 s of CPU a start; the suite spawns hundreds).
 */
const entry = process.env.AGGJOBS_TEST_CLI;
if (entry === undefined) {
  throw new Error(
    'AGGJOBS_TEST_CLI is unset: run the tests through vitest (its global setup builds the CLI)',
  );
}
export const cliEntry: string = entry;
