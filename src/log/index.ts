export {
  createLogger,
  keepRunLine,
  MAX_RUN_LINES,
  resolveLogFormat,
  type Logger,
  type LogLine,
} from './logger.ts';
