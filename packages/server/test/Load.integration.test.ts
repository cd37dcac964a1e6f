/**
 * `npm start -- --load`'s traffic: it runs without a single process warning (each request has its own abort
 * signal; one shared signal made Node warn `MaxListenersExceededWarning` on every request), reports progress on one
 * line redrawn in place, and stopping it aborts what is in flight.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as TestServers from "@tenantpool/testing/TestServers"
import { progressLine, runLoad } from "../src/Load.ts"
import { request, startApp } from "./fixtures/app.ts"

describe("load", () => {
  it.live(
    "drives traffic without process warnings and redraws one progress line",
    () =>
      Effect.gen(function* () {
        const url = TestServers.url("redis")
        const { base } = yield* startApp({
          projects: [
            { id: "load-free", tier: "FREE", redis: url },
            { id: "load-pro", tier: "PRO", redis: url }
          ],
          tiers: { FREE: { maxConcurrent: 5, maxQueue: 5 } }
        })
        const warnings: Array<string> = []
        const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`)
        yield* Effect.acquireRelease(
          Effect.sync(() => process.on("warning", onWarning)),
          () => Effect.sync(() => process.off("warning", onWarning))
        )
        const written: Array<string> = []
        const line = progressLine({ write: (text) => written.push(text), redraw: true, columns: 80 })
        const fiber = yield* Effect.forkChild(runLoad(base, ["load-free", "load-pro"], { line, intervalMillis: 250 }))
        // Enough requests that a listener leaked per request would have warned: Effect's signal allows 1,500.
        const total = () => Number(/total ([\d,]+)/.exec(written.at(-1) ?? "")?.[1]?.replace(/,/g, "") ?? 0)
        for (let i = 0; i < 60 && total() < 2500; i++) yield* Effect.sleep("250 millis")
        assert.isAtLeast(total(), 2500)
        // A log line printed meanwhile lands above the progress line, which is drawn again below it.
        line.printAbove(() => written.push("a log line\n"))
        yield* Fiber.interrupt(fiber)
        // Warnings are emitted on the next tick.
        yield* Effect.sleep("100 millis")
        assert.deepStrictEqual(warnings, [])
        // One line, redrawn in place: every update clears the line and starts at its beginning, only the log line
        // and the stop end a line.
        const logAt = written.indexOf("a log line\n")
        const clear = "\r\x1b[2K"
        assert.strictEqual(written[logAt - 1], clear)
        assert.match(written[logAt + 1]!, /^load: /)
        const updates = written.filter((_w, i) => i !== logAt && i !== logAt - 1 && i !== logAt + 1).slice(0, -1)
        assert.isAtLeast(updates.length, 4)
        for (const update of updates) {
          assert.isTrue(update.startsWith(clear), JSON.stringify(update))
          assert.match(update.slice(clear.length), /^load: [\d,]+ req\/s {2}total [\d,]+/)
          assert.isAtMost(update.length - clear.length, 79)
        }
        assert.strictEqual(written.at(-1), "\n")
        const output = written.join("")
        assert.match(output, /200: [\d,]+/)
        assert.match(output, /429: [\d,]+/, "the FREE project is driven past its tier")
        // Stopped: the server sees no more traffic from it.
        const before = yield* Effect.promise(() => request(`${base}/status.json`))
        yield* Effect.sleep("300 millis")
        const after = yield* Effect.promise(() => request(`${base}/status.json`))
        const queries = (s: any) =>
          s.projects.flatMap((p: any) => p.engines).reduce((n: number, e: any) => n + e.queryCount, 0)
        assert.strictEqual(queries(after.body), queries(before.body))
      }).pipe(Effect.scoped),
    30_000
  )
})
