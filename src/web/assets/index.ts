export { stylesheet } from './stylesheet.ts';
export { clientScript } from './client-script.ts';
export { favicon } from './favicon.ts';
