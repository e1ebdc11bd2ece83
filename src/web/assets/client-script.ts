/**
 * The dashboard's only script, served at /assets/app.js (no CDN: closed networks). It
 * - refreshes every element with `data-live="<url>"` from that URL every few seconds (the server
 *   renders the fragment, escaped; paused while the tab is hidden or the user is selecting text).
 *   A live part holding a field being typed in (focused, or changed and not yet sent) is left as it
 *   is until the field is sent or left unchanged: a refresh never overwrites a value or takes focus;
 * - shows every `<time datetime>` in the browser's zone with how long ago (or until) it is, the
 *   exact UTC time on hover;
 * - sorts a table by a column when its header is clicked (again: the other way), and keeps that
 *   order across refreshes;
 * - sends the buttons `data-action="<url>"` (POST, optional `data-body` JSON, `data-confirm`,
 *   `data-input` ids of fields whose values go in the body) and the forms `data-api-form` (fields as
 *   JSON) to the JSON API with the CSRF token from <meta>, and shows the answer;
 * - leaves empty fields out of filter forms' URLs, and keeps the Run-a-task form's hint and
 *   placeholders to the chosen task's arguments.
 */
export const clientScript = String.raw`(() => {
  'use strict';
  const csrf = document.querySelector('meta[name="csrf-token"]')?.getAttribute('content') || '';
  const flash = (text, kind) => {
    const box = document.getElementById('flash');
    if (!box) return;
    box.textContent = text;
    box.className = 'flash ' + (kind || 'ok');
    box.hidden = false;
    clearTimeout(flash.timer);
    flash.timer = setTimeout(() => { box.hidden = true; }, 8000);
  };

  // Times: local, and relative to now; the server's UTC text stays in the title.
  const relative = (ms) => {
    const s = Math.round(Math.abs(ms) / 1000);
    const text = s < 45 ? s + ' s' : s < 5400 ? Math.round(s / 60) + ' min' : s < 129600 ? Math.round(s / 3600) + ' h' : Math.round(s / 86400) + ' days';
    return ms >= 0 ? text + ' ago' : 'in ' + text;
  };
  const localTimes = (root) => {
    root.querySelectorAll('time[datetime]').forEach((t) => {
      const d = new Date(t.getAttribute('datetime'));
      if (Number.isNaN(d.getTime())) return;
      const pad = (n) => String(n).padStart(2, '0');
      const local = d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + ' ' + pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
      t.textContent = local + ' (' + relative(Date.now() - d.getTime()) + ')';
      t.title = d.toISOString().replace('T', ' ').replace(/\.\d{3}Z$/, ' UTC');
    });
  };

  // Sorting: per table (by its position in the page) the column and direction chosen.
  const sorts = new Map();
  const tableKey = (table) => String([...document.querySelectorAll('table')].indexOf(table));
  const cellValue = (row, col) => {
    const cell = row.children[col];
    if (!cell) return '';
    return cell.getAttribute('data-sort') ?? cell.textContent.trim();
  };
  const sortTable = (table, col, dir) => {
    const body = table.tBodies[0];
    if (!body) return;
    const rows = [...body.rows];
    const numeric = rows.every((r) => { const v = cellValue(r, col).replace(/[ ,]/g, ''); return v === '' || v === '—' || !Number.isNaN(Number(v)); });
    rows.sort((a, b) => {
      const x = cellValue(a, col), y = cellValue(b, col);
      const c = numeric ? (Number(x.replace(/[ ,]/g, '')) || 0) - (Number(y.replace(/[ ,]/g, '')) || 0) : x.localeCompare(y);
      return dir * c;
    });
    rows.forEach((r) => body.appendChild(r));
    [...table.tHead.rows[0].cells].forEach((th, i) => th.setAttribute('aria-sort', i === col ? (dir > 0 ? 'ascending' : 'descending') : 'none'));
  };
  const prepareTables = (root) => {
    root.querySelectorAll('table').forEach((table) => {
      if (!table.tHead || !table.tBodies[0]) return;
      [...table.tHead.rows[0].cells].forEach((th) => { if (th.textContent.trim()) th.classList.add('sort'); });
      const s = sorts.get(tableKey(table));
      if (s) sortTable(table, s.col, s.dir);
    });
  };
  document.addEventListener('click', (event) => {
    const th = event.target instanceof Element ? event.target.closest('th.sort') : null;
    if (!th) return;
    const table = th.closest('table');
    const col = [...th.parentElement.children].indexOf(th);
    const key = tableKey(table);
    const prev = sorts.get(key);
    const dir = prev && prev.col === col ? -prev.dir : 1;
    sorts.set(key, { col, dir });
    sortTable(table, col, dir);
  });

  // Fields being typed in: a live part holding one is not replaced.
  document.addEventListener('input', (event) => {
    if (event.target instanceof Element && event.target.closest('[data-live]')) event.target.setAttribute('data-dirty', '1');
  });
  const busy = (el) => {
    const focused = document.activeElement;
    if (focused && el.contains(focused) && /^(INPUT|SELECT|TEXTAREA)$/.test(focused.tagName)) return true;
    return el.querySelector('[data-dirty]') !== null;
  };
  const refresh = async (el, force) => {
    const url = el.getAttribute('data-live');
    if (!url) return;
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
        open.forEach((id) => { const d = document.getElementById(id); if (d) d.open = true; });
        el.setAttribute('data-last', text);
        prepareTables(el);
      }
      localTimes(el);
      el.setAttribute('data-updated', new Date().toISOString());
    } catch (e) { /* offline for a moment: try again next time */ }
  };
  const tick = (force) => {
    if (document.hidden) return;
    const sel = window.getSelection();
    if (!force && sel && String(sel).length > 0) return;
    document.querySelectorAll('[data-live]').forEach((el) => { void refresh(el, force === true); });
  };
  const interval = Number(document.body.getAttribute('data-refresh-ms') || '4000');
  setInterval(tick, interval);
  window.aggjobsRefresh = tick;
  localTimes(document);
  prepareTables(document);

  const send = async (url, body) => {
    const res = await fetch(url, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json', 'x-csrf-token': csrf },
      body: JSON.stringify(body || {}),
    });
    let data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    if (!res.ok) {
      if (data && data.problems && data.problems.length) {
        throw new Error(data.problems.map((p) => (p.rule.startsWith(p.field) ? p.rule : p.field + ': ' + p.rule)).join('; '));
      }
      throw new Error((data && data.error) || res.statusText);
    }
    return data;
  };
  const after = (el, data) => {
    const next = el.getAttribute('data-then');
    if (next && data && data.id) { window.location.href = next.replace('{id}', encodeURIComponent(data.id)); return; }
    flash(el.getAttribute('data-done') || 'Done.', 'ok');
    setTimeout(() => tick(true), 300);
  };

  document.addEventListener('click', async (event) => {
    const button = event.target instanceof Element ? event.target.closest('[data-action]') : null;
    if (!button) return;
    event.preventDefault();
    const question = button.getAttribute('data-confirm');
    if (question && !window.confirm(question)) return;
    let body = {};
    const raw = button.getAttribute('data-body');
    if (raw) body = JSON.parse(raw);
    const fields = (button.getAttribute('data-input') || '').split(',').filter(Boolean).map((id) => document.getElementById(id)).filter(Boolean);
    for (const field of fields) body[field.name] = field.type === 'number' ? Number(field.value) : field.value;
    button.disabled = true;
    try {
      const data = await send(button.getAttribute('data-action'), body);
      // Sent: the fields are no longer being typed in, and the next refresh shows what the server has.
      fields.forEach((f) => f.removeAttribute('data-dirty'));
      if (fields.includes(document.activeElement)) document.activeElement.blur();
      after(button, data);
    }
    catch (e) { flash(e.message, 'error'); }
    finally { button.disabled = false; }
  });

  document.addEventListener('submit', async (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement)) return;
    if (!form.hasAttribute('data-api-form')) {
      // A filter form: empty fields stay out of the URL.
      if ((form.getAttribute('method') || 'get').toLowerCase() === 'get') {
        [...form.elements].forEach((f) => { if ('value' in f && f.name && f.value === '') f.disabled = true; });
        setTimeout(() => [...form.elements].forEach((f) => { f.disabled = false; }), 0);
      }
      return;
    }
    event.preventDefault();
    // data-url-fields: fields that fill {placeholders} of the action URL, not the body;
    // data-json-fields: fields whose text is JSON (a task's args and kwargs);
    // data-number-fields: fields sent as numbers.
    const list = (name) => (form.getAttribute(name) || '').split(',').filter(Boolean);
    const urlFields = list('data-url-fields');
    const jsonFields = list('data-json-fields');
    const numberFields = list('data-number-fields');
    let url = form.getAttribute('action') || '';
    const body = {};
    try {
      new FormData(form).forEach((value, key) => {
        if (key === '_csrf' || value === '') return;
        if (urlFields.includes(key)) { url = url.replace('{' + key + '}', encodeURIComponent(String(value))); return; }
        if (jsonFields.includes(key)) {
          try { body[key] = JSON.parse(String(value)); }
          catch (e) { throw new Error(key + ' must be JSON, e.g. ' + (key === 'args' ? '["2026-11-01"]' : '{"granularity": "daily"}')); }
          return;
        }
        body[key] = numberFields.includes(key) ? Number(value) : value;
      });
      after(form, await send(url, body));
    } catch (e) { flash(e.message, 'error'); }
  });

  // The Run-a-task form: the chosen task's description and arguments.
  const hints = (select) => {
    const option = select.selectedOptions[0];
    const form = select.form;
    if (!option || !form) return;
    const args = JSON.parse(option.getAttribute('data-args') || '[]');
    const box = document.getElementById(select.getAttribute('data-hints'));
    if (box) box.textContent = option.getAttribute('data-description') + '. ' + (args.length === 0 ? 'No arguments.' : 'Arguments, in order: ' + args.join(', ') + ' (args as a list, or kwargs by name).');
    if (form.elements.args) form.elements.args.placeholder = args.length === 0 ? '[]' : JSON.stringify(args);
    if (form.elements.kwargs) form.elements.kwargs.placeholder = option.getAttribute('data-kwargs') || '{}';
  };
  document.querySelectorAll('select[data-hints]').forEach((s) => hints(s));
  document.addEventListener('change', (event) => {
    if (event.target instanceof HTMLSelectElement && event.target.hasAttribute('data-hints')) hints(event.target);
  });
})();
`;
