#!/bin/bash
# alternating rounds: current capture (off) and the design's (on); single-row updates for 10 s each, then one 1,000-row update
# Needs schema probe (delta-state-setup.sql). Run from this folder. Prints rounds to single.txt (variant round updates p50-ms p99-ms)
# and batch.txt; the figures of 2026-12-02 are in single-2026-12-02.txt and batch-2026-12-02.txt (docs/delta-state.md).
DB=aggjobs_bench_full
for r in 1 2 3 4 5 6; do
  for v in off on; do
    psql -q -h 127.0.0.1 -U root $DB -f variant-$v.sql
    rm -f pgbench_log.*
    pgbench -h 127.0.0.1 -U root -n -c 1 -T 10 -f one.sql -l $DB > pgb-$v-$r.txt 2>&1
    python3 -c "
import glob,statistics as st
l=[int(x.split()[2]) for f in glob.glob('pgbench_log.*') for x in open(f)]
l.sort(); n=len(l)
print('$v', $r, n, l[n//2]/1000, l[int(n*0.99)]/1000)" >> single.txt
    psql -h 127.0.0.1 -U root $DB -f batch.sql 2>&1 | grep Time | sed "s/^/$v $r /" >> batch.txt
  done
done
psql -q -h 127.0.0.1 -U root $DB -f variant-off.sql
psql -h 127.0.0.1 -U root $DB -Atc "select count(*) from aggjobs.change_log"
