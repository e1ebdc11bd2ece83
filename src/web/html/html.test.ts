import { describe, expect, it } from 'vitest';
import { html, jsonForScript, raw } from './html.ts';

describe('html', () => {
  it('escapes interpolated text, not nested templates or raw markup', () => {
    const inner = html`<b>${'<i>'}</b>`;
    expect(html`<p title="${'"x" & y'}">${inner}${raw('<br>')}${'<script>'}</p>`.value).toBe(
      '<p title="&quot;x&quot; &amp; y"><b>&lt;i&gt;</b><br>&lt;script&gt;</p>',
    );
  });

  it('flattens arrays and drops null, undefined and booleans', () => {
    expect(html`${[1, ['<a>', null], undefined, false, true]}`.value).toBe('1&lt;a&gt;');
  });

  it('keeps </script> out of JSON placed in a script block', () => {
    expect(jsonForScript({ a: '</script><script>' }).value).not.toContain('</script>');
  });
});
