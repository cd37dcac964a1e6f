/**
 * A small load generator for the demo: keeps requests in flight against every demo project (more against the
 * first, FREE, one than its tier admits, so 429s show up; a few PostgreSQL and MongoDB reads on the others, so
 * every engine's target has traffic on the status page), and reports progress once a second on a `ProgressLine`
 * (one line redrawn in place on a terminal; log lines go above it through `loggerAbove`).
 *
 * Each request has an abort controller of its own, dropped when the request ends: stopping aborts the ones in
 * flight. (One long-lived signal passed to every `fetch` collects a listener per request — Node warned
 * `MaxListenersExceededWarning` about 1,000 times a second.)
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"

/**
 * Where progress goes: one line redrawn in place on a terminal, a line per report otherwise.
 *
 * @category models
 * @since 0.1.0
 */
export interface ProgressLine {
  /** Shows `text` as the current progress. */
  readonly show: (text: string) => void
  /** Runs `print` (which writes whole lines, a log line say) above the progress line, then draws it again. */
  readonly printAbove: <A>(print: () => A) => A
  /** Ends the progress line. */
  readonly end: () => void
}

/**
 * A progress line on `write` (default: standard output). With `redraw` (default: when standard output is a
 * terminal) it is one line redrawn in place and cut to `columns` (a wrapped line could not be redrawn).
 *
 * @category constructors
 * @since 0.1.0
 */
export const progressLine = (options?: {
  readonly write?: ((text: string) => void) | undefined
  readonly redraw?: boolean | undefined
  readonly columns?: number | undefined
}): ProgressLine => {
  const write = options?.write ?? ((text: string) => void process.stdout.write(text))
  if (!(options?.redraw ?? process.stdout.isTTY === true)) {
    return { show: (text) => write(`${text}\n`), printAbove: (print) => print(), end: () => {} }
  }
  const clear = "\r\x1b[2K"
  let current = ""
  const cut = (text: string) => text.slice(0, Math.max(20, (options?.columns ?? process.stdout.columns ?? 100) - 1))
  return {
    show: (text) => {
      current = cut(text)
      write(clear + current)
    },
    printAbove: (print) => {
      if (current !== "") write(clear)
      try {
        return print()
      } finally {
        if (current !== "") write(current)
      }
    },
    end: () => {
      if (current !== "") write("\n")
      current = ""
    }
  }
}

/**
 * A logger that prints with `logger` above the progress line, so log lines never land in the middle of it.
 *
 * @category constructors
 * @since 0.1.0
 */
export const loggerAbove = <M, O>(line: ProgressLine, logger: Logger.Logger<M, O>): Logger.Logger<M, O> =>
  Logger.make((options) => line.printAbove(() => logger.log(options)))

interface LoadState {
  readonly base: string
  readonly inFlight: Set<AbortController>
  readonly counts: Map<string, number>
  total: number
  stopped: boolean
}

// The request a worker sends next: mostly key-value reads and writes; every tenth a table or documents read.
const nextRequest = (s: LoadState, project: string, worker: number, i: number, mixed: boolean) => {
  const key = `k${(worker * 1000 + i) % 200}`
  if (mixed && i % 10 === 3) return { url: `${s.base}/projects/${project}/items` }
  if (mixed && i % 10 === 7) return { url: `${s.base}/projects/${project}/documents` }
  const url = `${s.base}/projects/${project}/kv/${key}`
  return i % 4 === 0 ? { url, init: { method: "PUT", body: JSON.stringify({ value: `v${i}` }) } } : { url }
}

const worker = async (s: LoadState, project: string, n: number, mixed: boolean) => {
  for (let i = 0; !s.stopped; i++) {
    const { url, init } = nextRequest(s, project, n, i, mixed)
    const controller = new AbortController()
    s.inFlight.add(controller)
    let outcome: string
    try {
      const res = await fetch(url, { ...init, signal: controller.signal })
      await res.arrayBuffer()
      outcome = String(res.status)
    } catch {
      if (s.stopped) return
      outcome = "network"
      await new Promise((r) => setTimeout(r, 100))
    } finally {
      s.inFlight.delete(controller)
    }
    s.counts.set(outcome, (s.counts.get(outcome) ?? 0) + 1)
    s.total++
  }
}

const formatCount = (n: number) => n.toLocaleString("en-US")

// One progress line: the rate, the total, and the responses by status.
const progress = (s: LoadState, rate: number): string => {
  const byStatus = [...s.counts.entries()]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([k, v]) => `${k}: ${formatCount(v)}`)
    .join("  ")
  return `load: ${formatCount(rate)} req/s  total ${formatCount(s.total)}  ${byStatus}`
}

/**
 * Runs until interrupted; interruption aborts the requests in flight.
 *
 * @category constructors
 * @since 0.1.0
 */
export const runLoad = (
  base: string,
  projects: ReadonlyArray<string>,
  options?: { readonly line?: ProgressLine | undefined; readonly intervalMillis?: number | undefined } | undefined
): Effect.Effect<void> =>
  Effect.callback<void>(() => {
    const s: LoadState = { base, inFlight: new Set(), counts: new Map(), total: 0, stopped: false }
    const line = options?.line ?? progressLine()
    projects.forEach((project, p) => {
      const concurrency = p === 0 ? 60 : 8
      for (let n = 0; n < concurrency; n++) void worker(s, project, n, p > 0)
    })
    let last = 0
    const timer = setInterval(() => {
      line.show(progress(s, s.total - last))
      last = s.total
    }, options?.intervalMillis ?? 1000)
    return Effect.sync(() => {
      s.stopped = true
      clearInterval(timer)
      for (const controller of s.inFlight) controller.abort()
      line.end()
    })
  })
