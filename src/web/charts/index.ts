export { timeChart } from './time-chart.ts';
