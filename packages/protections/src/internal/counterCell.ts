/**
 * A counter series whose value lives in a plain field and is read by the exporter at scrape time, registered once
 * in Effect's metric registry (the technique of core's `internal/series.ts`). `Metric.update` looks the series up
 * in the registry on every call (about half a microsecond); a check that passes from memory should not pay that to
 * count a cache hit.
 *
 * @internal
 */
import type * as Context from "effect/Context"
import * as Metric from "effect/Metric"

/** @internal */
export class CounterCell {
  n = 0
  constructor(
    metric: Metric.Counter<number>,
    attrs: Readonly<Record<string, string>>,
    context: Context.Context<never>
  ) {
    Metric.registerUnsafe(Metric.withAttributes(metric, attrs), context, {
      get: () => ({ count: this.n, incremental: true }),
      update: () => {},
      modify: () => {}
    })
  }
}
