/** Wall-clock milliseconds with sub-millisecond precision, comparable across threads of one machine. */
export function wallMs(): number {
  return performance.timeOrigin + performance.now();
}

/** What the bench tasks (bench-tasks.mjs) return. */
export interface NoopResult {
  /** wallMs() when the task body began. */
  startedAt: number;
}
