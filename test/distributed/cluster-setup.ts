import type { TestProject } from 'vitest/node';
import { citusMissing, startCitusCluster } from '../support/citus-cluster.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Ports of the run's Citus cluster, or why there is none (one line). */
    citus: { coordinatorPort: number; workerPorts: number[] } | { missing: string };
  }
}

/**
 * Starts the run's Citus cluster once for every distributed test file. Where Citus is not installed
 * the files fail, each with the one line saying what to run: a distributed test that did not run is
 * a failure, never a skip.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const missing = await citusMissing();
  if (missing !== undefined) {
    project.provide('citus', { missing });
    return async () => undefined;
  }
  const cluster = await startCitusCluster();
  project.provide('citus', {
    coordinatorPort: cluster.coordinator.port,
    workerPorts: cluster.workers.map((w) => w.port),
  });
  return async () => {
    await cluster.stop();
  };
}
