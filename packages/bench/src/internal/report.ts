/**
 * Small helpers shared by the benchmarks: command-line numbers, medians and a printed table with ratios.
 *
 * @internal
 */

/** @internal */
export interface Result {
  readonly name: string
  readonly opsPerSecond: number
}

/** Reads `--name N` from the command line. @internal */
export const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`)
  const value = i >= 0 ? Number(process.argv[i + 1]) : NaN
  return Number.isFinite(value) && value > 0 ? value : fallback
}

/** @internal */
export const median = (xs: ReadonlyArray<number>): number => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

/** Prints results and the requested ratios (numerator vs denominator). @internal */
export const report = (
  title: string,
  results: ReadonlyArray<Result>,
  ratios: ReadonlyArray<readonly [string, string]>
): void => {
  const by = new Map(results.map((r) => [r.name, r.opsPerSecond]))
  console.log(`\n${title}  (node ${process.version})`)
  for (const r of results)
    console.log(`  ${r.name.padEnd(24)} ${Math.round(r.opsPerSecond).toString().padStart(9)} ops/s`)
  for (const [a, b] of ratios) {
    const x = by.get(a)
    const y = by.get(b)
    if (x !== undefined && y !== undefined) console.log(`  ${`${a} / ${b}`.padEnd(40)} ${(x / y).toFixed(2)}x`)
  }
}
