import { describe, expect, it } from 'vitest';
import { StatementBatcher } from './statement-batcher.ts';

/** A send whose statements finish when the test says so; records what each carried. */
function controlledSend() {
  const sent: string[][] = [];
  const open: { resolve: () => void; reject: (e: Error) => void }[] = [];
  const send = (requests: string[]): Promise<string[]> => {
    sent.push(requests);
    return new Promise<string[]>((resolve, reject) => {
      open.push({ resolve: () => resolve(requests.map((r) => `done ${r}`)), reject });
    });
  };
  return { sent, open, send };
}

/** Lets the batcher go on after a statement ended (its next one starts in a later microtask). */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('StatementBatcher', () => {
  it('sends a lone request at once, and those that come meanwhile together in the next statement', async () => {
    const { sent, open, send } = controlledSend();
    const batcher = new StatementBatcher(send, (r: string) => r);
    const a = batcher.submit('a');
    expect(sent).toEqual([['a']]);
    const b = batcher.submit('b');
    const c = batcher.submit('c');
    expect(sent).toEqual([['a']]); // one statement in flight at most
    open.shift()?.resolve();
    expect(await a).toBe('done a');
    await settle();
    expect(sent).toEqual([['a'], ['b', 'c']]);
    open.shift()?.resolve();
    expect(await Promise.all([b, c])).toEqual(['done b', 'done c']);
  });

  it('never puts two requests with the same key in one statement', async () => {
    const { sent, open, send } = controlledSend();
    const batcher = new StatementBatcher(send, (r: string) => r.split(':')[0] ?? r);
    const first = batcher.submit('x:1');
    const rest = [batcher.submit('x:2'), batcher.submit('y:1'), batcher.submit('x:3')];
    open.shift()?.resolve();
    await first;
    await settle();
    expect(sent[1]).toEqual(['x:2', 'y:1']);
    open.shift()?.resolve();
    await settle();
    expect(sent[2]).toEqual(['x:3']);
    open.shift()?.resolve();
    expect(await Promise.all(rest)).toEqual(['done x:2', 'done y:1', 'done x:3']);
  });

  it('sends a failed batch again one request at a time: only the request the database refuses fails', async () => {
    const sent: string[][] = [];
    const send = (requests: string[]): Promise<string[]> => {
      sent.push(requests);
      if (requests.includes('bad')) return Promise.reject(new Error('refused'));
      return Promise.resolve(requests.map((r) => `done ${r}`));
    };
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => (release = r));
    const batcher = new StatementBatcher(
      async (requests: string[]) => {
        if (requests[0] === 'first') await gate;
        return await send(requests);
      },
      (r: string) => r,
    );
    const first = batcher.submit('first');
    const results = ['ok1', 'bad', 'ok2'].map((r) =>
      batcher.submit(r).then(
        (v) => v,
        (e: unknown) => (e instanceof Error ? `error ${e.message}` : 'error'),
      ),
    );
    release();
    await first;
    expect(await Promise.all(results)).toEqual(['done ok1', 'error refused', 'done ok2']);
    expect(sent.slice(1)).toEqual([['ok1', 'bad', 'ok2'], ['ok1'], ['bad'], ['ok2']]);
  });

  it('keeps a batch within its maximum size', async () => {
    const { sent, open, send } = controlledSend();
    const batcher = new StatementBatcher(send, (r: string) => r, 2);
    const all = ['a', 'b', 'c', 'd', 'e'].map((r) => batcher.submit(r));
    for (let i = 0; i < 3; i += 1) {
      await settle();
      open.shift()?.resolve();
    }
    await Promise.all(all);
    expect(sent).toEqual([['a'], ['b', 'c'], ['d', 'e']]);
  });
});
