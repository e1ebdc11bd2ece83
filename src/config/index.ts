export { ConfigError } from './config.error.ts';
export { parseSettings, type Settings, type LogLevel, type SourcePartitions } from './settings.ts';
export { loadSettings } from './load-settings.ts';
export { parseRedisTarget, type RedisNode, type RedisTarget } from './redis-target.ts';
export { redact } from './redact.ts';
export {
  createSecretScrubber,
  isSecretName,
  settingsScrubber,
  type SecretScrubber,
} from './secret-scrubber.ts';
