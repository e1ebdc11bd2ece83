import { dashboardClient } from '../client/index.ts';

/**
 * The dashboard's script as served at /assets/app.js: the JavaScript of `dashboardClient`
 * (client/dashboard-client.ts, type-checked and linted with the rest), called at once. Its text is
 * what the running code was compiled to (tsc for dist/, esbuild under tsx and vitest); esbuild's
 * keepNames wraps functions in `__name(fn, "name")`, so the wrapper defines that helper as the
 * identity.
 */
export const clientScript = `(() => {
  const __name = (fn) => fn;
  (${dashboardClient.toString()})();
})();
`;
