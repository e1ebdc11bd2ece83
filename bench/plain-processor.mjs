/**
 * The plain BullMQ worker's processor (plain-bullmq-worker.mjs): a job named `statement` runs one
 * trivial statement through a pg pool of its thread (kept across jobs, as a plain worker would), any
 * other job does nothing. Both return when they started, like the aggjobs bench tasks.
 */
import process from 'node:process';
import { performance } from 'node:perf_hooks';
import pg from 'pg';

let pool;
const wallMs = () => performance.timeOrigin + performance.now();

async function processor(job) {
  const startedAt = wallMs();
  if (job.name === 'statement') {
    pool ??= new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 4 });
    await pool.query('SELECT 1');
  }
  return { startedAt };
}
processor.close = async () => {
  await pool?.end();
};
export default processor;
