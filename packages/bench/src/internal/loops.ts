/**
 * Closed-loop load and interleaved rounds: N callers in flight for a fixed time (async loops for promise APIs,
 * Effect fibers for effects), each call's latency recorded, then variants measured in alternating order over
 * several rounds so that a shared machine's drifts fall on every variant alike. Both kinds of loop pay the same
 * bookkeeping per call (two `performance.now()` reads and an array write).
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import { median, quantile, type Row, type Target } from "./suite.ts"

/** One round of one variant. @internal */
export interface Sample {
  readonly opsPerSecond: number
  /** Latency quantiles of the round, ms. */
  readonly p50: number
  readonly p99: number
}

// Latencies of one round (ms), up to a cap; beyond it every other call is dropped, which keeps the quantiles.
class Latencies {
  private values = new Float64Array(1 << 16)
  private n = 0
  private stride = 1
  private seen = 0
  add(ms: number) {
    if (this.seen++ % this.stride !== 0) return
    if (this.n === this.values.length) {
      if (this.n >= 1 << 20) {
        // Keep every other value and sample half as often from now on.
        for (let i = 0; i < this.n >> 1; i++) this.values[i] = this.values[2 * i]!
        this.n >>= 1
        this.stride *= 2
      } else {
        const bigger = new Float64Array(this.values.length * 2)
        bigger.set(this.values)
        this.values = bigger
      }
    }
    this.values[this.n++] = ms
  }
  quantiles(): { p50: number; p99: number } {
    const v = this.values.subarray(0, this.n)
    return { p50: quantile(v, 0.5), p99: quantile(v, 0.99) }
  }
}

/** `inflight` async loops calling `op` for `seconds`. @internal */
export const promiseLoops = async (
  inflight: number,
  seconds: number,
  op: (i: number) => PromiseLike<unknown>
): Promise<Sample> => {
  const latencies = new Latencies()
  let stop = false
  let count = 0
  const timer = setTimeout(() => (stop = true), seconds * 1000)
  const started = performance.now()
  await Promise.all(
    Array.from({ length: inflight }, async (_, w) => {
      let i = w
      while (!stop) {
        const t0 = performance.now()
        await op(i++)
        latencies.add(performance.now() - t0)
        count++
      }
    })
  )
  clearTimeout(timer)
  return { opsPerSecond: count / ((performance.now() - started) / 1000), ...latencies.quantiles() }
}

/** `inflight` Effect fibers running `op` for `seconds`. @internal */
export const effectLoops = <E, R>(
  inflight: number,
  seconds: number,
  op: (i: number) => Effect.Effect<unknown, E, R>
): Effect.Effect<Sample, E, R> =>
  Effect.suspend(() => {
    const latencies = new Latencies()
    let stop = false
    let count = 0
    const timer = setTimeout(() => (stop = true), seconds * 1000)
    const started = performance.now()
    const worker = (w: number) => {
      let i = w
      let t0 = 0
      return Effect.whileLoop({
        while: () => !stop,
        body: () => {
          t0 = performance.now()
          return op(i++)
        },
        step: () => {
          latencies.add(performance.now() - t0)
          count++
        }
      })
    }
    return Effect.map(
      Effect.all(
        Array.from({ length: inflight }, (_, w) => worker(w)),
        { concurrency: "unbounded", discard: true }
      ),
      () => {
        clearTimeout(timer)
        return { opsPerSecond: count / ((performance.now() - started) / 1000), ...latencies.quantiles() }
      }
    )
  })

/**
 * A variant to measure: runs one round, `inflight` in flight, for `share` of the round's time (the warm-up round
 * is shorter).
 *
 * @internal
 */
export type Variant = readonly [name: string, run: (inflight: number, share: number) => Promise<Sample>]

// The warm-up round's length, as a share of a measured round's.
const warmUpShare = 0.5

/** Samples per `name@inflight`. @internal */
export type Samples = Map<string, Array<Sample>>

/**
 * Measures every variant at every in-flight count, `rounds` times, the order of the variants reversed every other
 * round; one unrecorded warm-up round first. `progress` hears each step.
 *
 * @internal
 */
export const interleave = async (
  variants: ReadonlyArray<Variant>,
  inflights: ReadonlyArray<number>,
  rounds: number,
  progress: (message: string) => void
): Promise<Samples> => {
  const samples: Samples = new Map()
  for (let r = -1; r < rounds; r++) {
    const order = r % 2 === 0 ? variants : [...variants].reverse()
    for (const inflight of inflights) {
      for (const [name, run] of order) {
        progress(`${r < 0 ? "warm-up" : `round ${r + 1}/${rounds}`} @${inflight} ${name}`)
        const sample = await run(inflight, r < 0 ? warmUpShare : 1)
        if (r < 0) continue
        const key = `${name}@${inflight}`
        const list = samples.get(key) ?? []
        list.push(sample)
        samples.set(key, list)
      }
    }
  }
  return samples
}

/** Medians of a variant's rounds. @internal */
export const summary = (samples: Samples, key: string): Sample & { readonly rounds: ReadonlyArray<number> } => {
  const s = samples.get(key) ?? []
  return {
    opsPerSecond: median(s.map((x) => x.opsPerSecond)),
    p50: median(s.map((x) => x.p50)),
    p99: median(s.map((x) => x.p99)),
    rounds: s.map((x) => Math.round(x.opsPerSecond))
  }
}

/**
 * The median of per-round ratios `a / b` (each round's two measurements were taken moments apart, so a slow
 * drift of the machine cancels). `pick` chooses the figure (throughput, or a latency quantile).
 *
 * @internal
 */
export const pairedRatio = (
  samples: Samples,
  a: string,
  b: string,
  pick: (s: Sample) => number = (s) => s.opsPerSecond
): number => {
  const xs = samples.get(a) ?? []
  const ys = samples.get(b) ?? []
  return median(xs.slice(0, ys.length).map((x, i) => pick(x) / pick(ys[i]!)))
}

/**
 * A throughput row: variant `a` against baseline `b` at `inflight`, ratio paired by round.
 *
 * @internal
 */
export const throughputRow = (
  workload: string,
  samples: Samples,
  a: string,
  b: string,
  inflight: number,
  target?: Target | undefined
): Row => {
  const x = summary(samples, `${a}@${inflight}`)
  const y = summary(samples, `${b}@${inflight}`)
  return {
    workload,
    name: `${a} / ${b} @${inflight}`,
    unit: "ops/s",
    figure: x.opsPerSecond,
    baseline: y.opsPerSecond,
    baselineName: `${b} @${inflight}`,
    ratio: pairedRatio(samples, `${a}@${inflight}`, `${b}@${inflight}`),
    p50: x.p50,
    p99: x.p99,
    target,
    detail: `rounds ${a}: ${x.rounds.join(" ")}; ${b}: ${y.rounds.join(" ")}`
  }
}

/**
 * A tail-latency row: the p99 of variant `a` against `b`'s at `inflight` (median of the rounds' p99s; the ratio
 * paired by round).
 *
 * @internal
 */
export const p99Row = (
  workload: string,
  samples: Samples,
  a: string,
  b: string,
  inflight: number,
  target?: Target | undefined
): Row => {
  const x = summary(samples, `${a}@${inflight}`)
  const y = summary(samples, `${b}@${inflight}`)
  return {
    workload,
    name: `p99 ${a} / ${b} @${inflight}`,
    unit: "ms",
    figure: x.p99,
    baseline: y.p99,
    baselineName: `p99 ${b} @${inflight}`,
    ratio: pairedRatio(samples, `${a}@${inflight}`, `${b}@${inflight}`, (s) => s.p99),
    p50: x.p50,
    p99: x.p99,
    target
  }
}
