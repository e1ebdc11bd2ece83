import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';

/**
 * The Chromium of the browser test, found the way users have one: CHROMIUM_PATH, else Debian's
 * /usr/bin/chromium, else Playwright's own browser where `playwright-core install` put it. None: an
 * error in one line saying how to get one (the test fails; it is never skipped).
 */
export function findChromium(env: NodeJS.ProcessEnv = process.env): string {
  const given = env.CHROMIUM_PATH;
  if (given !== undefined && given !== '') {
    if (existsSync(given)) return given;
    throw new Error(
      `CHROMIUM_PATH is ${given}, which does not exist: point it at a Chromium or Chrome binary`,
    );
  }
  if (existsSync('/usr/bin/chromium')) return '/usr/bin/chromium';
  let playwrights: string | undefined;
  try {
    playwrights = chromium.executablePath();
  } catch {
    // Playwright has no browser build for this platform.
  }
  if (playwrights !== undefined && existsSync(playwrights)) return playwrights;
  throw new Error(
    'no Chromium for the browser test: install one (Debian/Ubuntu: apt-get install chromium; elsewhere: npx playwright-core install chromium) or set CHROMIUM_PATH',
  );
}
