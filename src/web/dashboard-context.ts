import type { SecretScrubber, Settings } from '../config/index.ts';
import type { Pool } from '../db/index.ts';
import type { Logger } from '../log/index.ts';
import type { RollupDefinition } from '../rollups/index.ts';
import type { Control, Runtime } from '../runtime/index.ts';
import type { HealthReport } from '../tasks/index.ts';
import type { DashboardAuthSettings } from './auth/index.ts';

/** Everything a route or a page reads, built once by createDashboardApp. */
export interface DashboardContext {
  /** The dashboard's pool: every query under a statement and lock timeout (queries/timed-pool.ts). */
  readonly pool: Pool;
  readonly settings: Settings & DashboardAuthSettings;
  readonly runtime: Runtime;
  readonly control: Control;
  readonly logger: Logger;
  readonly scrub: SecretScrubber;
  readonly health: { report(fresh?: boolean): Promise<HealthReport> };
  readonly rollups: readonly RollupDefinition[];
  readonly views: readonly string[];
  readonly authEnabled: boolean;
}
