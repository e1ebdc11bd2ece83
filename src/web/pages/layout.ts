import { html, type SafeHtml } from '../html/index.ts';

const navItems = [
  { href: '/', label: 'Overview' },
  { href: '/tasks', label: 'Tasks' },
  { href: '/workers', label: 'Workers' },
  { href: '/schedules', label: 'Schedules' },
  { href: '/rollups', label: 'Rollups' },
  { href: '/backfill', label: 'Backfill' },
  { href: '/charts', label: 'Charts' },
  { href: '/config', label: 'Config' },
  { href: '/queues', label: 'Queues (Bull Board)' },
] as const;

/** The top navigation: it wraps on a narrow screen. */
export function navBar(path: string, who: string): SafeHtml {
  const active = (href: string): boolean =>
    href === '/' ? path === '/' : path === href || path.startsWith(`${href}/`);
  return html`<nav class="top">
    <a class="brand" href="/">aggjobs</a>
    ${navItems.map((n) => html`<a href="${n.href}" class="${active(n.href) ? 'active' : ''}">${n.label}</a>`)}
    <span class="spacer"></span>
    <span class="who">${who}</span>
  </nav>`;
}

/** The page head: charset, viewport, both color schemes, the icon and the stylesheet. */
export function pageHead(title: string, csrfToken?: string): SafeHtml {
  return html`<head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <meta name="color-scheme" content="light dark" />
    ${csrfToken === undefined ? '' : html`<meta name="csrf-token" content="${csrfToken}" />`}
    <title>${title} · aggjobs</title>
    <link rel="icon" href="/favicon.svg" type="image/svg+xml" />
    <link rel="stylesheet" href="/assets/style.css" />
  </head>`;
}

export function layout(options: {
  title: string;
  path: string;
  liveUrl: string;
  csrfToken: string;
  user: string | undefined;
  readOnly: boolean;
  notice?: SafeHtml | undefined;
  controls?: SafeHtml | undefined;
  live: SafeHtml;
}): SafeHtml {
  const who = options.user === undefined ? '' : `${options.user}${options.readOnly ? ' (read-only)' : ''}`;
  return html`<!doctype html>
    <html lang="en">
      ${pageHead(options.title, options.csrfToken)}
      <body>
        ${navBar(options.path, who)}
        <main>
          <h1>${options.title}</h1>
          ${options.notice} ${options.controls}
          <div id="live" data-live="${options.liveUrl}">${options.live}</div>
        </main>
        <div id="flash" class="flash" hidden></div>
        <script src="/assets/app.js" defer></script>
      </body>
    </html>`;
}
