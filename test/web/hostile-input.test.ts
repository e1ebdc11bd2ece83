import { beforeAll, describe, expect, it } from 'vitest';
import { MAX_BODY_BYTES } from '../../src/web/limits/index.ts';
import { webHarness, type WebHarness } from './web-harness.ts';

/** Issue 15, "Safety": hostile bodies, paths and query strings, with the sizes the issue measured. */
let h: WebHarness;

const post = (body: string | ReadableStream<Uint8Array>, headers: Record<string, string> = {}): RequestInit =>
  ({
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body,
    duplex: 'half',
  }) as RequestInit;

async function runCount(): Promise<number> {
  const { rows } = await h.db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM aggjobs.task_runs');
  return rows[0]?.n ?? 0;
}

interface ErrorBody {
  error: string;
  problems?: Array<{ field: string; rule: string }>;
}

beforeAll(async () => {
  h = await webHarness('postgres');
});

describe('request bodies are capped', () => {
  it('a 50 MB body is 413 naming the limit, unread when it declares its length, nothing written', async () => {
    const before = await runCount();
    const big = JSON.stringify({ kwargs: { note: 'x'.repeat(50 * 1024 * 1024) } });
    const res = await h.app.request(
      '/api/tasks/health_check/apply',
      post(big, { 'content-length': String(big.length) }),
    );
    expect(res.status).toBe(413);
    const body = (await res.json()) as ErrorBody;
    expect(body.error).toContain(`${MAX_BODY_BYTES} bytes`);
    expect(body.error).toContain('256 KiB');
    expect(await runCount()).toBe(before);
  });

  it('a streamed body without a length is cut off at the limit: 413, the rest never read', async () => {
    const before = await runCount();
    let chunksRead = 0;
    const chunk = new TextEncoder().encode('x'.repeat(64 * 1024));
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('{"kwargs":{"note":"'));
      },
      pull(controller) {
        chunksRead += 1;
        // 200 MB if read to the end (3,200 chunks of 64 KiB).
        if (chunksRead > 3200) controller.close();
        else controller.enqueue(chunk);
      },
    });
    const res = await h.app.request('/api/tasks/health_check/apply', post(stream));
    expect(res.status).toBe(413);
    // The limit is 4 chunks; a stream pulls at most a few ahead.
    expect(chunksRead).toBeLessThan(10);
    expect(await runCount()).toBe(before);
  });

  it('applies to every route that takes a body, before auth, CSRF or form parsing', async () => {
    const big = 'a='.concat('x'.repeat(MAX_BODY_BYTES));
    for (const [path, type] of [
      ['/api/queues/aggregation/pause', 'application/json'],
      ['/api/backfills', 'application/json'],
      ['/tasks', 'application/x-www-form-urlencoded'],
      ['/queues/api/queues/aggregation/add', 'application/json'],
    ] as const) {
      const res = await h.app.request(path, post(big, { 'content-type': type }));
      expect(res.status, path).toBe(413);
    }
  });

  it('a body just under the limit is read as usual', async () => {
    const body = JSON.stringify({ kwargs: { note: 'x'.repeat(MAX_BODY_BYTES - 100) } });
    const res = await h.app.request('/api/tasks/health_check/apply', post(body));
    // health_check takes no "note": refused by validation, not by size.
    expect(res.status).toBe(400);
  });
});

describe('every scan is linear', () => {
  it('a run whose argument is 40,000 characters is shown whole, its URL password scrubbed', async () => {
    // The scrubber's work is measured in src/config/redact.test.ts (characters looked
    // at, not time); here the same input goes through the API.
    const note = `${'p'.repeat(40_000)} postgres://app:hunter2@db/x`;
    await h.db.pool.query(
      `INSERT INTO aggjobs.task_runs (id, task, args, state, queue, attempts)
       VALUES ('long-arg-1', 'health_check', $1, 'queued', 'maintenance', 0)`,
      [JSON.stringify({ args: [], kwargs: { note } })],
    );
    const res = await h.app.request('/api/tasks/long-arg-1');
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toContain('p'.repeat(40_000));
    expect(text).toContain('postgres://app:***@db/x');
    expect(text).not.toContain('hunter2');
  });
});

describe('every input is bounded', () => {
  const problemsOf = async (res: Response) => ((await res.json()) as ErrorBody).problems ?? [];

  it('GET /api/tasks/<15,000 characters>: 400 naming the path and its limit', async () => {
    const res = await h.app.request(`/api/tasks/${'a'.repeat(15_000)}`);
    expect(res.status).toBe(400);
    expect(await problemsOf(res)).toEqual([{ field: 'path', rule: 'at most 2048 characters' }]);
  });

  it('a path parameter over 200 characters: 400 naming the parameter and its limit', async () => {
    const long = 'a'.repeat(1000);
    for (const [path, field, method] of [
      [`/api/tasks/${long}`, 'id', 'GET'],
      [`/tasks/${long}`, 'id', 'GET'],
      [`/api/tasks/${long}/apply`, 'name', 'POST'],
      [`/api/tasks/${long}/retry`, 'id', 'POST'],
      [`/api/tasks/${long}/revoke`, 'id', 'POST'],
      [`/api/workers/${long}/concurrency`, 'name', 'POST'],
      [`/api/queues/${long}/pause`, 'queue', 'POST'],
      [`/api/schedules/${long}/run`, 'task', 'POST'],
      [`/api/rollups/${long}/series`, 'table', 'GET'],
      [`/api/backfills/${long}/cancel`, 'id', 'POST'],
    ] as const) {
      const res = await h.app.request(path, { method, headers: { 'content-type': 'application/json' } });
      expect(res.status, path.slice(0, 30)).toBe(400);
      if (path.startsWith('/api/')) {
        expect(await problemsOf(res), path.slice(0, 30)).toEqual([{ field, rule: 'at most 200 characters' }]);
      } else {
        expect(await res.text()).toContain('id is too long: at most 200 characters');
      }
    }
  });

  it('a query value over 1,000 characters, or too many parameters: 400 naming the field', async () => {
    for (const path of ['/api/tasks', '/tasks', '/rollups', '/api/stats/runs']) {
      const res = await h.app.request(`${path}?q=${'x'.repeat(15_000)}`, {
        headers: { 'x-fragment': '1' },
      });
      expect(res.status, path).toBe(400);
      expect(await problemsOf(res)).toEqual([{ field: 'q', rule: 'at most 1000 characters' }]);
    }
    const many = Array.from({ length: 60 }, (_, i) => `k${i}=1`).join('&');
    const res = await h.app.request(`/api/tasks?${many}`);
    expect(res.status).toBe(400);
    expect(await problemsOf(res)).toEqual([{ field: 'query', rule: 'at most 50 parameters' }]);
    const repeated = Array.from({ length: 60 }, () => `state=queued`).join('&');
    expect((await h.app.request(`/api/tasks?${repeated}`)).status).toBe(400);
  });

  it('values within the limits are served as before', async () => {
    expect((await h.app.request(`/api/tasks/${'a'.repeat(200)}`)).status).toBe(404);
    expect((await h.app.request(`/api/tasks?q=${'x'.repeat(200)}`)).status).toBe(200);
  });
});

describe('JSON depth and keys', () => {
  const deep = (n: number) => `{"kwargs":{"x":${'['.repeat(n)}1${']'.repeat(n)}}}`;

  it('a 5,000-deep (and 2,000-deep) argument: 400 with a short message that does not echo it', async () => {
    const before = await runCount();
    for (const n of [5000, 2000, 40]) {
      const res = await h.app.request('/api/tasks/health_check/apply', post(deep(n)));
      expect(res.status, String(n)).toBe(400);
      const text = await res.text();
      expect(text.length, String(n)).toBeLessThan(300);
      expect(JSON.parse(text)).toEqual({
        error: 'the body is nested too deeply: at most 32 levels of nested arrays and objects',
        problems: [{ field: '(body)', rule: 'at most 32 levels of nested arrays and objects' }],
      });
    }
    expect(await runCount()).toBe(before);
  });

  it('brackets inside strings do not count as depth', async () => {
    const res = await h.app.request(
      '/api/tasks/health_check/apply',
      post(JSON.stringify({ kwargs: { x: '['.repeat(5000) } })),
    );
    const body = (await res.json()) as ErrorBody;
    expect(body.error).not.toContain('nested too deeply');
  });

  it('a key named __proto__ is refused (400 naming the field), not silently dropped', async () => {
    const before = await runCount();
    for (const [body, field] of [
      ['{"kwargs":{"__proto__":{"polluted":true}}}', 'kwargs.__proto__'],
      ['{"__proto__":{"kwargs":{}}}', '__proto__'],
      ['{"kwargs":{"a":[{"__proto__":1}]}}', 'kwargs.a.0.__proto__'],
    ] as const) {
      const res = await h.app.request('/api/tasks/health_check/apply', post(body));
      expect(res.status, body).toBe(400);
      expect(((await res.json()) as ErrorBody).problems, body).toEqual([
        { field, rule: 'a key named __proto__ is not allowed' },
      ]);
    }
    expect(await runCount()).toBe(before);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it("Bull Board's add job refuses the same: too deep, __proto__", async () => {
    const before = await runCount();
    for (const [body, field] of [
      [`{"name":"health_check","data":{"args":{"x":${'['.repeat(5000)}${']'.repeat(5000)}}}}`, '(body)'],
      ['{"name":"health_check","data":{"args":{"__proto__":{}}}}', 'data.args.__proto__'],
    ] as const) {
      const res = await h.app.request('/queues/api/queues/maintenance/add', post(body));
      expect(res.status).toBe(400);
      const text = await res.text();
      expect(text.length).toBeLessThan(300);
      expect((JSON.parse(text) as ErrorBody).problems?.map((p) => p.field)).toEqual([field]);
    }
    expect(await runCount()).toBe(before);
  });

  it('POST /api/queues/bogus/pause names the field "queue"', async () => {
    const res = await h.app.request('/api/queues/bogus/pause', post(''));
    expect(res.status).toBe(400);
    const body = (await res.json()) as ErrorBody;
    expect(body.problems?.map((p) => p.field)).toEqual(['queue']);
    expect(body.error).toMatch(/^invalid path: queue: /);
  });
});

describe('a refused value is not echoed whole', () => {
  it('a 200,000-character bad argument: 400 with a message under 2,000 characters', async () => {
    for (const [task, body] of [
      ['cleanup_old_data', { kwargs: { retention_days: 'x'.repeat(200_000) } }],
      ['health_check', { kwargs: { ['k'.repeat(200_000)]: 1 } }],
      ['hourly_rollup', { args: ['9'.repeat(200_000)] }],
    ] as const) {
      const res = await h.app.request(`/api/tasks/${task}/apply`, post(JSON.stringify(body)));
      expect(res.status, task).toBe(400);
      expect((await res.text()).length, task).toBeLessThan(2000);
    }
  });
});
