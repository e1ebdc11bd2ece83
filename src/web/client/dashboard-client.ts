/// <reference lib="dom" />
/// <reference lib="dom.iterable" />

/**
 * The dashboard's only script, run in the browser (served at /assets/app.js; no CDN: closed
 * networks). It
 * - refreshes every element with `data-live="<url>"` from that URL every few seconds (the server
 *   renders the fragment, escaped; paused while the tab is hidden or the user is selecting text).
 *   A live part holding a field being typed in (focused, or changed and not yet sent) is left as it
 *   is (`data-held` says a newer content waits): a refresh never overwrites a value or takes focus;
 * - shows every `<time datetime>` in the browser's zone with how long ago (or until) it is, the
 *   exact UTC time on hover;
 * - sorts a table by a column when its header is clicked (again: the other way), and keeps that
 *   order across refreshes; expanded `<details id>` stay expanded;
 * - sends the buttons `data-action="<url>"` (POST, optional `data-body` JSON, `data-confirm`,
 *   `data-input` ids of fields whose values go in the body) and the forms `data-api-form` (fields as
 *   JSON) to the JSON API with the CSRF token from <meta>, and shows the answer;
 * - leaves empty fields out of filter forms' URLs, and keeps the Run-a-task form's hint and
 *   placeholders to the chosen task's arguments.
 *
 * It is type-checked and linted as TypeScript, and served as the JavaScript of this one function
 * (`dashboardClient.toString()`, see assets/client-script.ts): it must not use anything from outside
 * its body — no imports, no module-level values — only the browser's globals.
 */
export function dashboardClient(): void {
  'use strict';
  type Json = Record<string, unknown>;
  // An attribute the server wrote empty (an optional `data-*` left out) counts as absent.
  const attr = (el: Element, name: string): string | undefined => {
    const value = el.getAttribute(name);
    return value === null || value === '' ? undefined : value;
  };
  const csrf = document.querySelector('meta[name="csrf-token"]')?.getAttribute('content') ?? '';

  let flashTimer: number | undefined;
  const flash = (text: string, kind: 'ok' | 'error'): void => {
    const box = document.getElementById('flash');
    if (box === null) return;
    box.textContent = text;
    box.className = `flash ${kind}`;
    box.hidden = false;
    window.clearTimeout(flashTimer);
    flashTimer = window.setTimeout(() => {
      box.hidden = true;
    }, 8000);
  };

  // Times: local, and relative to now; the server's UTC text goes to the title.
  const relative = (ms: number): string => {
    const s = Math.round(Math.abs(ms) / 1000);
    const text =
      s < 45
        ? `${s} s`
        : s < 5400
          ? `${Math.round(s / 60)} min`
          : s < 129_600
            ? `${Math.round(s / 3600)} h`
            : `${Math.round(s / 86_400)} days`;
    return ms >= 0 ? `${text} ago` : `in ${text}`;
  };
  const pad = (n: number): string => String(n).padStart(2, '0');
  const localTimes = (root: ParentNode): void => {
    root.querySelectorAll('time[datetime]').forEach((t) => {
      const d = new Date(t.getAttribute('datetime') ?? '');
      if (Number.isNaN(d.getTime())) return;
      const local =
        `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
        `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
      t.textContent = `${local} (${relative(Date.now() - d.getTime())})`;
      (t as HTMLElement).title = d
        .toISOString()
        .replace('T', ' ')
        .replace(/\.\d{3}Z$/, ' UTC');
    });
  };

  // Sorting: per table (by its position in the page) the column and direction chosen.
  const sorts = new Map<number, { col: number; dir: number }>();
  const tableKey = (table: HTMLTableElement): number =>
    [...document.querySelectorAll('table')].indexOf(table);
  const cellValue = (row: HTMLTableRowElement, col: number): string => {
    const cell = row.cells[col];
    if (cell === undefined) return '';
    return cell.getAttribute('data-sort') ?? (cell.textContent ?? '').trim();
  };
  const asNumber = (text: string): number => Number(text.replace(/[ ,]/g, ''));
  const sortTable = (table: HTMLTableElement, col: number, dir: number): void => {
    const body = table.tBodies[0];
    const head = table.tHead?.rows[0];
    if (body === undefined || head === undefined) return;
    const rows = [...body.rows];
    const numeric = rows.every((r) => {
      const v = cellValue(r, col);
      return v === '' || v === '—' || !Number.isNaN(asNumber(v));
    });
    rows.sort((a, b) => {
      const x = cellValue(a, col);
      const y = cellValue(b, col);
      return dir * (numeric ? (asNumber(x) || 0) - (asNumber(y) || 0) : x.localeCompare(y));
    });
    rows.forEach((r) => body.appendChild(r));
    [...head.cells].forEach((th, i) =>
      th.setAttribute('aria-sort', i === col ? (dir > 0 ? 'ascending' : 'descending') : 'none'),
    );
  };
  const prepareTables = (root: ParentNode): void => {
    root.querySelectorAll('table').forEach((table) => {
      const head = table.tHead?.rows[0];
      if (head === undefined || table.tBodies[0] === undefined) return;
      [...head.cells].forEach((th) => {
        if ((th.textContent ?? '').trim() !== '') th.classList.add('sort');
      });
      const s = sorts.get(tableKey(table));
      if (s !== undefined) sortTable(table, s.col, s.dir);
    });
  };

  // Fields being typed in: a live part holding one is not replaced.
  const busy = (el: Element): boolean => {
    const focused = document.activeElement;
    if (focused !== null && el.contains(focused) && /^(INPUT|SELECT|TEXTAREA)$/.test(focused.tagName)) {
      return true;
    }
    return el.querySelector('[data-dirty]') !== null;
  };
  const refresh = async (el: Element, force: boolean): Promise<void> => {
    const url = attr(el, 'data-live');
    if (url === undefined) return;
    try {
      const res = await fetch(url, { headers: { 'x-fragment': '1' }, credentials: 'same-origin' });
      if (!res.ok) return;
      const text = await res.text();
      // Someone is typing here: the new content waits (data-held says when it was held back).
      if (!force && busy(el)) {
        if (text !== el.getAttribute('data-last')) el.setAttribute('data-held', new Date().toISOString());
        return;
      }
      el.removeAttribute('data-held');
      if (text !== el.getAttribute('data-last')) {
        // Expanded <details> with an id (a worker's More, a rate limit's Change) stay expanded.
        const open = [...el.querySelectorAll('details[id][open]')].map((d) => d.id);
        el.innerHTML = text;
        for (const id of open) {
          const d = document.getElementById(id);
          if (d instanceof HTMLDetailsElement) d.open = true;
        }
        el.setAttribute('data-last', text);
        prepareTables(el);
      }
      localTimes(el);
      el.setAttribute('data-updated', new Date().toISOString());
    } catch {
      // Offline for a moment: try again next time.
    }
  };
  const tick = (force = false): void => {
    if (document.hidden) return;
    const selection = window.getSelection();
    if (!force && selection !== null && String(selection).length > 0) return;
    document.querySelectorAll('[data-live]').forEach((el) => void refresh(el, force));
  };
  const interval = Number(document.body.getAttribute('data-refresh-ms') ?? '4000');
  window.setInterval(() => tick(), interval);
  (window as unknown as { aggjobsRefresh: typeof tick }).aggjobsRefresh = tick;
  localTimes(document);
  prepareTables(document);

  const send = async (url: string, body: Json): Promise<Json | null> => {
    const res = await fetch(url, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json', 'x-csrf-token': csrf },
      body: JSON.stringify(body),
    });
    let data: { error?: string; problems?: Array<{ field: string; rule: string }> } & Json = {};
    try {
      data = (await res.json()) as typeof data;
    } catch {
      data = {};
    }
    if (!res.ok) {
      if (data.problems !== undefined && data.problems.length > 0) {
        throw new Error(
          data.problems
            .map((p) => (p.rule.startsWith(p.field) ? p.rule : `${p.field}: ${p.rule}`))
            .join('; '),
        );
      }
      throw new Error(data.error ?? res.statusText);
    }
    return data;
  };
  const after = (el: Element, data: Json | null): void => {
    const next = attr(el, 'data-then');
    if (next !== undefined && typeof data?.id === 'string') {
      window.location.href = next.replace('{id}', encodeURIComponent(data.id));
      return;
    }
    flash(attr(el, 'data-done') ?? 'Done.', 'ok');
    window.setTimeout(() => tick(true), 300);
  };
  const message = (e: unknown): string => (e instanceof Error ? e.message : String(e));

  document.addEventListener('click', (event) => {
    const target = event.target instanceof Element ? event.target : null;
    const th = target?.closest('th.sort');
    if (th instanceof HTMLTableCellElement) {
      const table = th.closest('table');
      if (table === null) return;
      const key = tableKey(table);
      const prev = sorts.get(key);
      const dir = prev !== undefined && prev.col === th.cellIndex ? -prev.dir : 1;
      sorts.set(key, { col: th.cellIndex, dir });
      sortTable(table, th.cellIndex, dir);
      return;
    }
    const button = target?.closest('[data-action]');
    if (!(button instanceof HTMLButtonElement)) return;
    event.preventDefault();
    const question = attr(button, 'data-confirm');
    if (question !== undefined && !window.confirm(question)) return;
    const body = JSON.parse(attr(button, 'data-body') ?? '{}') as Json;
    const fields = (attr(button, 'data-input') ?? '')
      .split(',')
      .filter((id) => id !== '')
      .map((id) => document.getElementById(id))
      .filter((f): f is HTMLInputElement => f instanceof HTMLInputElement);
    for (const f of fields) body[f.name] = f.type === 'number' ? Number(f.value) : f.value;
    button.disabled = true;
    void (async () => {
      try {
        const data = await send(attr(button, 'data-action') ?? '', body);
        // Sent: the fields are no longer being typed in, and the next refresh shows the server's.
        for (const f of fields) f.removeAttribute('data-dirty');
        const focused = document.activeElement;
        if (focused instanceof HTMLInputElement && fields.includes(focused)) focused.blur();
        after(button, data);
      } catch (e) {
        flash(message(e), 'error');
      } finally {
        button.disabled = false;
      }
    })();
  });

  document.addEventListener('input', (event) => {
    const field = event.target;
    if (field instanceof Element && field.closest('[data-live]') !== null)
      field.setAttribute('data-dirty', '1');
  });

  document.addEventListener('submit', (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement)) return;
    if (!form.hasAttribute('data-api-form')) {
      // A filter form: empty fields stay out of the URL.
      if ((form.getAttribute('method') ?? 'get').toLowerCase() === 'get') {
        const empty = [...form.elements].filter(
          (f): f is HTMLInputElement | HTMLSelectElement =>
            (f instanceof HTMLInputElement || f instanceof HTMLSelectElement) &&
            f.name !== '' &&
            f.value === '',
        );
        for (const f of empty) f.disabled = true;
        window.setTimeout(() => empty.forEach((f) => (f.disabled = false)), 0);
      }
      return;
    }
    event.preventDefault();
    // data-url-fields: fields that fill {placeholders} of the action URL, not the body;
    // data-json-fields: fields whose text is JSON (a task's args and kwargs);
    // data-number-fields: fields sent as numbers.
    const list = (name: string): string[] =>
      (form.getAttribute(name) ?? '').split(',').filter((n) => n !== '');
    const urlFields = list('data-url-fields');
    const jsonFields = list('data-json-fields');
    const numberFields = list('data-number-fields');
    let url = form.getAttribute('action') ?? '';
    const body: Json = {};
    void (async () => {
      try {
        new FormData(form).forEach((value, key) => {
          if (key === '_csrf' || value === '' || typeof value !== 'string') return;
          if (urlFields.includes(key)) {
            url = url.replace(`{${key}}`, encodeURIComponent(value));
          } else if (jsonFields.includes(key)) {
            try {
              body[key] = JSON.parse(value) as unknown;
            } catch {
              const example = key === 'args' ? '["2026-11-01"]' : '{"granularity": "daily"}';
              throw new Error(`${key} must be JSON, e.g. ${example}`);
            }
          } else {
            body[key] = numberFields.includes(key) ? Number(value) : value;
          }
        });
        after(form, await send(url, body));
      } catch (e) {
        flash(message(e), 'error');
      }
    })();
  });

  // The Run-a-task form: the chosen task's description and arguments.
  const hints = (select: HTMLSelectElement): void => {
    const option = select.selectedOptions[0];
    const form = select.form;
    if (option === undefined || form === null) return;
    const args = JSON.parse(option.getAttribute('data-args') ?? '[]') as string[];
    const box = document.getElementById(select.getAttribute('data-hints') ?? '');
    if (box !== null) {
      box.textContent =
        `${option.getAttribute('data-description') ?? ''}. ` +
        (args.length === 0
          ? 'No arguments.'
          : `Arguments, in order: ${args.join(', ')} (args as a list, or kwargs by name).`);
    }
    const field = (name: string): HTMLInputElement | null => {
      const f = form.elements.namedItem(name);
      return f instanceof HTMLInputElement ? f : null;
    };
    const argsField = field('args');
    if (argsField !== null) argsField.placeholder = args.length === 0 ? '[]' : JSON.stringify(args);
    const kwargsField = field('kwargs');
    if (kwargsField !== null) kwargsField.placeholder = option.getAttribute('data-kwargs') ?? '{}';
  };
  document.querySelectorAll('select[data-hints]').forEach((s) => {
    if (s instanceof HTMLSelectElement) hints(s);
  });
  document.addEventListener('change', (event) => {
    if (event.target instanceof HTMLSelectElement && event.target.hasAttribute('data-hints'))
      hints(event.target);
  });
}
