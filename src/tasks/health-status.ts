/** What each health check answers, and how they combine (health-check.ts). */
export type HealthStatus = 'healthy' | 'degraded' | 'unhealthy';

export interface HealthCheckResult {
  status: HealthStatus;
  detail: string;
  data?: unknown;
}

/** The seed's "dictionary with health status": one entry per check and the worst of them. */
export interface HealthReport {
  status: HealthStatus;
  checkedAt: string;
  checks: Record<string, HealthCheckResult>;
}

const rank: Record<HealthStatus, number> = { healthy: 0, degraded: 1, unhealthy: 2 };

export function worst(statuses: Iterable<HealthStatus>): HealthStatus {
  let w: HealthStatus = 'healthy';
  for (const s of statuses) if (rank[s] > rank[w]) w = s;
  return w;
}
