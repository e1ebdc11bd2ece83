export { seedDemoData, isDemoSeeded } from './seed-demo-data.ts';
export { demoDefaults, checkSeedOptions, currentHour, type SeedOptions } from './seed-options.ts';
export { runTraffic, checkTrafficOptions, type TrafficOptions, type TrafficStats } from './run-traffic.ts';
export { WorkloadOptionError } from './workload-option.error.ts';
