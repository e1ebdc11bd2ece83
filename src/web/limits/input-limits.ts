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

/**
 * The longest path, in characters after percent-decoding. The longest a route needs is a run id
 * or a worker name (under 200) inside a fixed prefix; Bull Board's paths hold a queue name and a
 * job id.
 */
export const MAX_PATH_CHARS = 2048;

/** The longest path parameter: run id, task, worker, queue, table, schedule. */
export const MAX_PARAM_CHARS = 200;

/** The longest query-string value (the longest the pages send is a search term, under 200). */
export const MAX_QUERY_VALUE_CHARS = 1000;

/** The most query-string parameters in one request (a page sends at most 8). */
export const MAX_QUERY_PARAMS = 50;

/**
 * The deepest nesting of arrays and objects in a JSON body. A task's arguments are at most 3 deep
 * ({ kwargs: { key: value } }); 5,000 deep overflowed the validator's stack (500), 2,000 deep came
 * back echoed whole in the 400.
 */
export const MAX_JSON_DEPTH = 32;
