export { createLogger, resolveLogFormat, type Logger, type LogLine } from './logger.ts';
