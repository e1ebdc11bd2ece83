export { seedDemoData, isDemoSeeded, type SeedResult, type SeedProgress } from './seed-demo-data.ts';
export { demoDefaults, seedLimits, checkSeedOptions, currentHour, type SeedOptions } from './seed-options.ts';
export {
  runTraffic,
  checkTrafficOptions,
  trafficLimits,
  type TrafficOptions,
  type TrafficStats,
} from './run-traffic.ts';
export { WorkloadOptionError } from './workload-option.error.ts';
