/**
 * Gathers requests that arrive while a statement is under way and sends them together in the next
 * one: at most one statement in flight, none delayed when the batcher is idle (a lone request goes
 * at once, as before). A worker's slots claim and finish runs this way: at concurrency 4 a claim and
 * a finish each cost one statement and one commit for every run, and the commit of a finish also
 * holds the run totals' row (migration 000010) until it is flushed, so the slots queued behind each
 * other on that row; in batches they share both.
 *
 * Requests with the same key (the same run) never share a statement: a row can be changed only once
 * in one. A batch that fails is sent again one request at a time, so that one request the database
 * refuses fails only itself; an error on a lone request is that request's error.
 */
export class StatementBatcher<Request, Result> {
  private readonly pending: {
    request: Request;
    resolve: (result: Result) => void;
    reject: (error: unknown) => void;
  }[] = [];
  private busy = false;

  constructor(
    private readonly send: (requests: Request[]) => Promise<Result[]>,
    private readonly keyOf: (request: Request) => string,
    /** The most requests one statement carries. */
    private readonly maxBatch = 64,
  ) {}

  submit(request: Request): Promise<Result> {
    return new Promise<Result>((resolve, reject) => {
      this.pending.push({ request, resolve, reject });
      this.next();
    });
  }

  private next(): void {
    if (this.busy || this.pending.length === 0) return;
    const batch: typeof this.pending = [];
    const keys = new Set<string>();
    for (let i = 0; i < this.pending.length && batch.length < this.maxBatch;) {
      const item = this.pending[i];
      if (item === undefined) break;
      const key = this.keyOf(item.request);
      if (keys.has(key)) {
        i += 1;
        continue;
      }
      keys.add(key);
      batch.push(item);
      this.pending.splice(i, 1);
    }
    this.busy = true;
    void this.flush(batch).finally(() => {
      this.busy = false;
      this.next();
    });
  }

  private async flush(batch: typeof this.pending): Promise<void> {
    try {
      const results = await this.send(batch.map((item) => item.request));
      batch.forEach((item, i) => item.resolve(results[i] as Result));
    } catch (error) {
      if (batch.length === 1) {
        batch[0]?.reject(error);
        return;
      }
      for (const item of batch) {
        try {
          const [result] = await this.send([item.request]);
          item.resolve(result as Result);
        } catch (alone) {
          item.reject(alone);
        }
      }
    }
  }
}
