export { collectMetrics } from './collect-metrics.ts';
