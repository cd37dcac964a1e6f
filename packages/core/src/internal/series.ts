/**
 * Metric series whose values live in plain fields, exported through Effect's Metric registry.
 *
 * `Metric.update` looks up the series in the registry on every call (two context reads and a map lookup with a
 * string key). The guard updates a counter and a histogram on every operation, so instead each series keeps its
 * numbers here and is registered once with `Metric.registerUnsafe`, whose `get` hook the exporter
 * (`PrometheusMetrics`) reads at scrape time: an update is an increment. Same registry, same names, same
 * exposition; a series is removed with its registration.
 *
 * @internal
 */
import type * as Context from "effect/Context"
import * as Metric from "effect/Metric"

/** @internal */
export class CounterCell {
  n = 0
  readonly registration: Metric.Registration
  constructor(
    metric: Metric.Counter<number>,
    attrs: Readonly<Record<string, string>>,
    context: Context.Context<never>
  ) {
    this.registration = Metric.registerUnsafe(Metric.withAttributes(metric, attrs), context, {
      get: () => ({ count: this.n, incremental: true }),
      update: () => {},
      modify: () => {}
    })
  }
}

/** @internal */
export class HistogramCell {
  private readonly bounds: Float64Array
  private readonly counts: Float64Array
  count = 0
  sum = 0
  min = Number.MAX_VALUE
  max = -Number.MAX_VALUE
  readonly registration: Metric.Registration
  constructor(
    metric: Metric.Histogram<number>,
    boundaries: ReadonlyArray<number>,
    attrs: Readonly<Record<string, string>>,
    context: Context.Context<never>
  ) {
    this.bounds = Float64Array.from([...boundaries].sort((a, b) => a - b))
    this.counts = new Float64Array(this.bounds.length + 1)
    this.registration = Metric.registerUnsafe(Metric.withAttributes(metric, attrs), context, {
      get: () => {
        const buckets: Array<[number, number]> = []
        let cumulative = 0
        for (let i = 0; i < this.bounds.length; i++) {
          cumulative += this.counts[i]!
          buckets.push([this.bounds[i]!, cumulative])
        }
        return { buckets, count: this.count, min: this.min, max: this.max, sum: this.sum }
      },
      update: () => {},
      modify: () => {}
    })
  }

  observe(value: number): void {
    const b = this.bounds
    let i = 0
    // Latencies are mostly small: a forward scan stops within the first few buckets.
    while (i < b.length && value > b[i]!) i++
    this.counts[i]!++
    this.count++
    this.sum += value
    if (value < this.min) this.min = value
    if (value > this.max) this.max = value
  }
}
