export { MAX_BODY_BYTES } from './input-limits.ts';
