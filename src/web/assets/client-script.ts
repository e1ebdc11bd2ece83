/**
 * The dashboard's only script, served at /assets/app.js (no CDN: closed networks). It
 * - refreshes every element with `data-live="<url>"` from that URL every few seconds (the server
 *   renders the fragment, escaped; paused while the tab is hidden or the user is selecting text);
 * - sends the buttons `data-action="<url>"` (POST, optional `data-body` JSON, `data-confirm`) and the
 *   forms `data-api-form` (fields as JSON) to the JSON API with the CSRF token from <meta>, and shows
 *   the answer.
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
  const refresh = async (el) => {
    const url = el.getAttribute('data-live');
    if (!url) return;
    try {
      const res = await fetch(url, { headers: { 'x-fragment': '1' }, credentials: 'same-origin' });
      if (!res.ok) return;
      const text = await res.text();
      if (text !== el.getAttribute('data-last')) {
        el.innerHTML = text;
        el.setAttribute('data-last', text);
      }
      el.setAttribute('data-updated', new Date().toISOString());
    } catch (e) { /* offline for a moment: try again next time */ }
  };
  const tick = () => {
    if (document.hidden) return;
    const sel = window.getSelection();
    if (sel && String(sel).length > 0) return;
    document.querySelectorAll('[data-live]').forEach((el) => { void refresh(el); });
  };
  const interval = Number(document.body.getAttribute('data-refresh-ms') || '4000');
  setInterval(tick, interval);
  window.aggjobsRefresh = tick;

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
    setTimeout(tick, 300);
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
    const input = button.getAttribute('data-input');
    if (input) {
      const field = document.getElementById(input);
      if (field) body[field.name] = field.type === 'number' ? Number(field.value) : field.value;
    }
    button.disabled = true;
    try { after(button, await send(button.getAttribute('data-action'), body)); }
    catch (e) { flash(e.message, 'error'); }
    finally { button.disabled = false; }
  });

  document.addEventListener('submit', async (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute('data-api-form')) return;
    event.preventDefault();
    // data-url-fields: fields that fill {placeholders} of the action URL, not the body;
    // data-json-fields: fields whose text is JSON (a task's args and kwargs).
    const urlFields = (form.getAttribute('data-url-fields') || '').split(',').filter(Boolean);
    const jsonFields = (form.getAttribute('data-json-fields') || '').split(',').filter(Boolean);
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
        body[key] = value;
      });
      after(form, await send(url, body));
    } catch (e) { flash(e.message, 'error'); }
  });
})();
`;
