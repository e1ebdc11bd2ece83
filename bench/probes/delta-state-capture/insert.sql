INSERT INTO public.execution_logs (workspace_id, user_id, workflow_id, status, started_at) VALUES (1, 1, 1, 'running', now());
