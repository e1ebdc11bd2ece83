export { collectMetrics } from './collect-metrics.ts';
export { PrometheusText, type Labels } from './prometheus-text.ts';
