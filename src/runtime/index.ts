export { createRuntime, type Runtime, type RuntimeOptions } from './runtime.ts';
export { BrokerUnreachableError, createBroker } from './broker.ts';
export { startWorker, type WorkerOptions, type WorkerHandle } from './worker.ts';
export { startBeat, type BeatHandle } from './beat.ts';
export {
  createControl,
  RunNotFoundError,
  RunNotRetryableError,
  type Control,
  type QueueCounts,
  type WorkerInfo,
} from './control.ts';
export { AsyncResult, TaskFailedError, ResultTimeoutError } from './async-result.ts';
export {
  childCounts,
  getRun,
  listRuns,
  recentFailures,
  finalStates,
  isOpenState,
  retryableStates,
  runStates,
  type RunRow,
  type RunRecord,
  type RunState,
  type RunQuery,
} from './run-log.ts';
export { listSchedules, nextRunTimes, slotRunId, type ScheduleInfo } from './schedules.ts';
export { nextSlot, type Cron } from './cron.ts';
export { runEagerly } from './eager.ts';
export { runHistory } from './run-history.ts';
export {
  runSeries,
  taskSummaries,
  queueLengthSeries,
  runtimeHistograms,
  runCounts,
  runTotals,
  RUNTIME_BUCKETS,
} from './run-stats.ts';
export { sendControl, type ControlMessage } from './control-channel.ts';
export { startServices, waitForShutdownSignal, type Services, type ExtraService } from './services.ts';
