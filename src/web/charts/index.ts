export { timeChart, type ChartSeries, type TimeChartOptions } from './time-chart.ts';
