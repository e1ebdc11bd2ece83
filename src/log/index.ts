export { createLogger, keepRunLine, resolveLogFormat, type Logger, type LogLine } from './logger.ts';
