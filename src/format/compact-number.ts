/** 999 → "999", 1234 → "1.2k", 3_000_000 → "3M", -1500 → "-1.5k", 0.25 → "0.25": progress lines and chart axes. */
export function compactNumber(value: number): string {
  const size = Math.abs(value);
  if (size >= 1e9) return `${+(value / 1e9).toFixed(1)}G`;
  if (size >= 1e6) return `${+(value / 1e6).toFixed(1)}M`;
  if (size >= 1e3) return `${+(value / 1e3).toFixed(1)}k`;
  return String(+value.toFixed(2));
}
