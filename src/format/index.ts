export { compactNumber } from './compact-number.ts';
