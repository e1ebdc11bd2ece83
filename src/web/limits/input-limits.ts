/**
 * The dashboard's limits on what a client may send. Each is far above what the dashboard's own
 * pages and API clients send, and low enough that a hostile request costs little (issue 15: a 50 MB
 * body took RSS from 95 to 727 MB; a 15,000-character run id cost 0.56 s).
 */

/**
 * The largest request body, in bytes: 256 KiB. A task's arguments are a few hundred bytes (the
 * largest, a backfill, under 200 bytes); Bull Board's "add job" form sends a job's data. 256 KiB
 * rather than 64 KiB so that a body that is merely too deep is still told so (400, not 413).
 */
export const MAX_BODY_BYTES = 256 * 1024;
