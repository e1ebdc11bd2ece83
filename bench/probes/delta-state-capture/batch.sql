\timing on
UPDATE public.execution_logs SET credits_used = credits_used + 1, duration_ms = coalesce(duration_ms, 0) + 1
WHERE id IN (SELECT 1 + floor(random() * 10000000)::bigint FROM generate_series(1, 1000));
