/** The dashboard's stylesheet, served at /assets/style.css. System fonts only: nothing is fetched. */
export const stylesheet = `
:root {
  color-scheme: light dark;
  --bg: #f6f7f9; --card: #fff; --text: #1f2328; --muted: #656d76; --line: #d8dee4;
  --accent: #1f6feb; --ok: #2f9e44; --warn: #e8590c; --bad: #e03131; --info: #1971c2; --gray: #868e96;
  --nav: #161b22; --field: #fff; --button: #f6f8fa; --button-hover: #eaeef2; --pre: #f6f8fa;
  --notice: #fff8e6; --notice-line: #f0c36d; --gridline: #e6e9ed; --track: #e9ecef;
}
/* Dark mode follows the system's (prefers-color-scheme). */
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #0d1117; --card: #161b22; --text: #e6edf3; --muted: #8d96a0; --line: #30363d;
    --accent: #4493f8; --nav: #010409; --field: #0d1117; --button: #21262d; --button-hover: #30363d;
    --pre: #0d1117; --notice: #2d2205; --notice-line: #9e6a03; --gridline: #262c36; --track: #30363d;
  }
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--text);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
code, pre, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; }
nav.top { background: var(--nav); color: #fff; display: flex; flex-wrap: wrap; align-items: center; gap: 4px;
  padding: 6px 20px; min-height: 48px; position: sticky; top: 0; z-index: 5; }
nav.top .brand { font-weight: 700; margin-right: 18px; color: #fff; letter-spacing: .2px; }
nav.top a { color: #c9d1d9; padding: 6px 10px; border-radius: 6px; }
nav.top a:hover { background: #30363d; text-decoration: none; color: #fff; }
nav.top a.active { background: #30363d; color: #fff; }
nav.top .spacer { flex: 1; }
nav.top .who { color: #8b949e; font-size: 12px; }
main { max-width: 1440px; margin: 0 auto; padding: 20px; }
h1 { font-size: 22px; margin: 4px 0 16px; }
h2 { font-size: 16px; margin: 0 0 10px; }
.grid { display: grid; gap: 16px; grid-template-columns: repeat(auto-fit, minmax(340px, 1fr)); margin-bottom: 16px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 14px 16px; margin-bottom: 16px; overflow-x: auto; }
.grid .card { margin-bottom: 0; }
.stats { display: flex; gap: 12px; flex-wrap: wrap; margin-bottom: 16px; }
.stat { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 10px 16px; min-width: 150px; }
.stat .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .4px; }
.stat .value { font-size: 22px; font-weight: 600; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 600; font-size: 12px; white-space: nowrap; }
tr:last-child td { border-bottom: none; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.mono { white-space: nowrap; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600; color: #fff; background: var(--gray); white-space: nowrap; }
.badge.succeeded, .badge.healthy, .badge.online, .badge.yes { background: var(--ok); }
.badge.failed, .badge.timed_out, .badge.unhealthy, .badge.offline { background: var(--bad); }
.badge.degraded, .badge.retrying, .badge.paused { background: var(--warn); }
.badge.running, .badge.queued { background: var(--info); }
.badge.revoked, .badge.no { background: var(--gray); }
.muted { color: var(--muted); }
.error-text { color: var(--bad); white-space: pre-wrap; word-break: break-word; }
pre { background: var(--pre); border: 1px solid var(--line); border-radius: 6px; padding: 10px; overflow: auto; max-height: 420px; white-space: pre-wrap; word-break: break-word; margin: 0; }
dl.props { display: grid; grid-template-columns: 150px 1fr; gap: 4px 12px; margin: 0; }
dl.props dt { color: var(--muted); }
dl.props dd { margin: 0; }
form.filters { display: flex; flex-wrap: wrap; gap: 8px; align-items: end; }
form.filters label, form.stack label { display: flex; flex-direction: column; font-size: 12px; color: var(--muted); gap: 2px; }
form.stack { display: flex; flex-wrap: wrap; gap: 12px; align-items: end; }
input, select { font: inherit; padding: 5px 8px; border: 1px solid var(--line); border-radius: 6px; background: var(--field); color: var(--text); max-width: 100%; }
button, .button { font: inherit; padding: 5px 12px; border-radius: 6px; border: 1px solid var(--line); background: var(--button); color: var(--text); cursor: pointer; white-space: nowrap; }
button:hover, .button:hover { background: var(--button-hover); text-decoration: none; }
button.primary { background: var(--accent); border-color: var(--accent); color: #fff; }
button.primary:hover { background: #1a5fd0; }
button.danger { color: var(--bad); border-color: #f1aeb5; }
button.danger:hover { background: var(--button-hover); }
button:disabled { opacity: .5; cursor: default; }
.actions { display: flex; gap: 8px; flex-wrap: wrap; align-items: center; }
td .actions { flex-wrap: wrap; }
.flash { position: fixed; right: 20px; bottom: 20px; padding: 10px 16px; border-radius: 8px; color: #fff; background: var(--ok); box-shadow: 0 4px 14px rgba(0,0,0,.15); max-width: 520px; z-index: 10; }
.flash.error { background: var(--bad); }
.pager { display: flex; gap: 8px; align-items: center; margin-top: 10px; }
.notice { background: var(--notice); border: 1px solid var(--notice-line); border-radius: 8px; padding: 8px 12px; margin-bottom: 16px; }
figure.chart { margin: 0; }
figure.chart figcaption { font-weight: 600; margin-bottom: 6px; }
figure.chart svg { display: block; max-height: 260px; }
figure.chart .grid { stroke: var(--gridline); stroke-width: 1; }
figure.chart .axis { fill: var(--muted); font-size: 10px; }
figure.chart .hover { fill: transparent; }
figure.chart .hover:hover { fill: rgba(31,111,235,.08); }
.legend { display: flex; flex-wrap: wrap; gap: 4px 14px; font-size: 12px; color: var(--muted); margin-top: 4px; }
.legend i { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 5px; vertical-align: -1px; }
.progress { background: var(--track); border-radius: 6px; height: 10px; overflow: hidden; min-width: 160px; }
.progress > span { display: block; height: 100%; background: var(--ok); }
.truncate { max-width: 260px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
th.sort { cursor: pointer; user-select: none; }
th.sort:hover { color: var(--text); }
th[aria-sort="ascending"]::after { content: " ▲"; }
th[aria-sort="descending"]::after { content: " ▼"; }
.result-cell .kv { display: inline-block; margin-right: 10px; white-space: nowrap; }
pre.inline { max-height: 160px; padding: 4px 6px; }
details summary { cursor: pointer; margin-top: 8px; }
.delayed { color: var(--info); font-weight: 600; }
label.check { flex-direction: row !important; align-items: center; gap: 6px !important; }
time { white-space: nowrap; }
/* Phone width: nothing wider than the screen; wide tables scroll inside their card. */
@media (max-width: 600px) {
  main { padding: 12px; }
  nav.top { padding: 6px 10px; }
  nav.top .brand { margin-right: 8px; }
  nav.top .spacer { display: none; }
  .grid { grid-template-columns: minmax(0, 1fr); }
  dl.props { grid-template-columns: 110px minmax(0, 1fr); }
  .stat { min-width: 0; flex: 1 1 40%; }
  .flash { left: 12px; right: 12px; }
  .progress { min-width: 80px; }
}
`;
