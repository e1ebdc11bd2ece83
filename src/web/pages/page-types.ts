import type { SafeHtml } from '../html/index.ts';

/** What a page handler gets: the query string and whether the user may change things. */
export interface PageRequest {
  query: Record<string, string>;
  canWrite: boolean;
}

/**
 * A page: static `controls` (forms the user types in) and the `live` part, which the client script
 * re-fetches every few seconds from the same URL (header `x-fragment: 1`) and swaps in.
 */
export interface PageResult {
  title: string;
  controls?: SafeHtml;
  live: SafeHtml;
}
