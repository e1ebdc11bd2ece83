\set id random(1, 10000000)
UPDATE public.execution_logs SET status = 'success', duration_ms = duration_ms + 1 WHERE id = :id;
