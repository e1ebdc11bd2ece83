export { html, raw, escapeHtml, SafeHtml, type HtmlChild } from './html.ts';
export { formatTime, formatDuration, formatAge, formatBytes, formatNumber, formatJson } from './format.ts';
