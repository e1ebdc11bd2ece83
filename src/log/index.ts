export { createLogger, type Logger, type LogLine } from './logger.ts';
