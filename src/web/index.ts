export { createDashboardApp } from './app.ts';
export { startDashboard, PortInUseError, type DashboardServer } from './server.ts';
export type { DashboardDeps } from './dashboard-env.ts';
export { assertCredentialsForEnv, type DashboardAuthSettings } from './auth/index.ts';
