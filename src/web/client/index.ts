export { dashboardClient } from './dashboard-client.ts';
