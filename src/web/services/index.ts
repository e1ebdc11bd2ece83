export { runJson, type RunJson } from './run-view.ts';
export { createHealthService } from './health-service.ts';
export { configView } from './config-view.ts';
