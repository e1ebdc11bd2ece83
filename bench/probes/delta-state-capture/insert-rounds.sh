#!/bin/bash
# Single-row INSERT latency with the built capture that logs old rows whole (aggjobs.log_old_rows,
# migration 000018) against the group-column capture, on the bench set's execution_logs: 6 rounds
# of 10 s each way, the order alternating. Run from this folder. Prints
# "variant round inserts p50-ms p99-ms" to insert.txt; the figures of 2026-12-02 are in
# insert-2026-12-02.txt (docs/delta-state.md). Leaves the group-column capture in place.
DB=aggjobs_bench_full
on="BEGIN;
CREATE OR REPLACE TRIGGER aggjobs_log_deletes AFTER DELETE ON public.execution_logs REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION aggjobs.log_old_rows();
CREATE OR REPLACE TRIGGER aggjobs_log_moves AFTER UPDATE ON public.execution_logs REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION aggjobs.log_old_rows();
COMMIT;"
off="BEGIN;
CREATE OR REPLACE TRIGGER aggjobs_log_deletes AFTER DELETE ON public.execution_logs REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION aggjobs.log_old_groups('started_at', 'workspace_id');
CREATE OR REPLACE TRIGGER aggjobs_log_moves AFTER UPDATE ON public.execution_logs REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION aggjobs.log_old_groups('started_at', 'workspace_id');
COMMIT;"
for r in 1 2 3 4 5 6; do
  for v in on off; do
    if [ $((r % 2)) = 0 ]; then vv=$([ $v = on ] && echo off || echo on); else vv=$v; fi
    if [ $vv = on ]; then psql -q -h 127.0.0.1 $DB -c "$on"; else psql -q -h 127.0.0.1 $DB -c "$off"; fi
    rm -f pgbench_log.*
    pgbench -h 127.0.0.1 -n -c 1 -T 10 -f insert.sql -l $DB > /dev/null 2>&1
    python3 -c "
import glob
l=sorted(int(x.split()[2]) for f in glob.glob('pgbench_log.*') for x in open(f)); n=len(l)
print('$vv', $r, n, l[n//2]/1000, l[int(n*0.99)]/1000)" >> insert.txt
  done
done
rm -f pgbench_log.*
psql -q -h 127.0.0.1 $DB -c "$off"
