import { html, type SafeHtml } from '../html/index.ts';

export const navItems = [
  { href: '/', label: 'Overview' },
  { href: '/tasks', label: 'Tasks' },
  { href: '/workers', label: 'Workers' },
  { href: '/schedules', label: 'Schedules' },
  { href: '/rollups', label: 'Rollups' },
  { href: '/backfill', label: 'Backfill' },
  { href: '/charts', label: 'Charts' },
  { href: '/queues', label: 'Queues (Bull Board)' },
] as const;

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
  const active = (href: string): boolean =>
    href === '/' ? options.path === '/' : options.path === href || options.path.startsWith(`${href}/`);
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="csrf-token" content="${options.csrfToken}" />
        <title>${options.title} · aggjobs</title>
        <link rel="stylesheet" href="/assets/style.css" />
      </head>
      <body>
        <nav class="top">
          <a class="brand" href="/">aggjobs</a>
          ${navItems.map((n) => html`<a href="${n.href}" class="${active(n.href) ? 'active' : ''}">${n.label}</a>`)}
          <span class="spacer"></span>
          <span class="who"
            >${options.user === undefined ? '' : `${options.user}${options.readOnly ? ' (read-only)' : ''}`}</span
          >
        </nav>
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
