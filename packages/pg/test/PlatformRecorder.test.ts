/**
 * The recorder on a fake writer, under the test clock: a full batch is written at once, what waits is written when
 * the interval ends, batches never exceed `batchSize`, what does not fit is dropped and counted, a batch the
 * database could not take is written at the next flush while a refused one is dropped, and closing writes what is
 * left within `flushTimeout`.
 */
import { assert, describe, it } from "@effect/vitest"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as Scope from "effect/Scope"
import { ConnectionError, SqlError, UnknownError } from "effect/sql/SqlError"
import { TestClock } from "effect/testing"
import * as PlatformRecorder from "../src/PlatformRecorder.ts"

/** A writer that records every call (failed ones too); `fail` decides, per call, whether it fails and how. */
const fakeWriter = (fail: (kind: string, call: number) => SqlError | "hang" | undefined = () => undefined) => {
  const calls: Array<{ readonly kind: string; readonly rows: ReadonlyArray<unknown> }> = []
  const write = (kind: string, rows: ReadonlyArray<unknown>) =>
    Effect.suspend(() => {
      const outcome = fail(kind, calls.filter((c) => c.kind === kind).length)
      if (outcome === "hang") return Effect.never
      calls.push({ kind, rows })
      return outcome === undefined ? Effect.void : Effect.fail(outcome)
    })
  const writer: PlatformRecorder.Writer = {
    metrics: (rows) => write("metrics", rows),
    events: (rows) => write("events", rows),
    health: (h) => write("health", [h])
  }
  return { writer, calls, sizes: (kind: string) => calls.filter((c) => c.kind === kind).map((c) => c.rows.length) }
}

/** A SqlError as sql-pg makes it when the server answers with this SQLSTATE. */
const serverError = (code: string) =>
  new SqlError({
    reason: new UnknownError({
      cause: Object.assign(new Error(`server said ${code}`), { code, severity: "ERROR" }),
      message: "PgConnection: Query failed",
      operation: "query"
    })
  })

const connectionRefused = () =>
  new SqlError({
    reason: new ConnectionError({ cause: new Error("ECONNREFUSED"), message: "connect failed", operation: "connect" })
  })

const metric = (value: number): PlatformRecorder.MetricSample => ({
  projectId: "acme",
  engine: "postgres",
  name: "db_queries_total",
  value
})

/** Lets the flusher run what it can without moving the clock. */
const settle = Effect.andThen(TestClock.adjust(0), Effect.yieldNow)

describe("PlatformRecorder", () => {
  it.effect("writes a full batch at once, without waiting for the interval, in batches of at most batchSize", () =>
    Effect.gen(function* () {
      const fake = fakeWriter()
      const recorder = yield* PlatformRecorder.makeWith(fake.writer, { batchSize: 10, flushInterval: "1 minute" })
      for (let i = 0; i < 25; i++) recorder.recordMetric(metric(i))
      yield* settle
      assert.deepStrictEqual(fake.sizes("metrics"), [10, 10, 5])
      const stats = yield* recorder.stats
      assert.strictEqual(stats.written.metrics, 25)
      assert.strictEqual(stats.buffered.metrics, 0)
    })
  )

  it.effect("writes what waits when the interval ends: metrics and events in one call each, health one by one", () =>
    Effect.gen(function* () {
      const fake = fakeWriter()
      const recorder = yield* PlatformRecorder.makeWith(fake.writer, { batchSize: 100, flushInterval: "1 second" })
      recorder.recordMetric(metric(1))
      recorder.recordMetric(metric(2))
      recorder.logEvent({ projectId: "acme", engine: "postgres", type: "pool_created" })
      recorder.recordHealth({ projectId: "acme", engine: "postgres", status: "healthy" })
      recorder.recordHealth({ projectId: "acme", engine: "postgres", status: "unhealthy" })
      yield* TestClock.adjust("999 millis")
      assert.deepStrictEqual(fake.calls, [], "nothing before the window closes")
      yield* TestClock.adjust("1 millis")
      assert.deepStrictEqual(
        fake.calls.map((c) => `${c.kind}:${c.rows.length}`),
        ["metrics:2", "events:1", "health:1", "health:1"]
      )
      assert.deepStrictEqual((yield* recorder.stats).written, { metrics: 2, events: 1, health: 2 })
    })
  )

  it.effect("recording never waits: what does not fit is dropped and counted (stats and the dropped counter)", () =>
    Effect.gen(function* () {
      const fake = fakeWriter()
      const recorder = yield* PlatformRecorder.makeWith(fake.writer, {
        bufferCapacity: 3,
        batchSize: 100,
        flushInterval: "1 minute"
      })
      for (let i = 0; i < 5; i++) recorder.recordMetric(metric(i))
      recorder.logEvent({ projectId: "acme", engine: "postgres", type: "overloaded" })
      const stats = yield* recorder.stats
      assert.deepStrictEqual(stats.buffered, { metrics: 3, events: 0, health: 0 })
      assert.deepStrictEqual(stats.dropped, { total: 3, bufferFull: 3, rejected: 0, shutdown: 0 })
      const counted = (kind: string) =>
        Effect.map(
          Metric.value(Metric.withAttributes(PlatformRecorder.droppedTotal, { kind, reason: "buffer_full" })),
          (state) => state.count
        )
      assert.strictEqual(yield* counted("metric"), 2)
      assert.strictEqual(yield* counted("event"), 1)

      yield* TestClock.adjust("1 minute")
      assert.deepStrictEqual(fake.sizes("metrics"), [3], "what was kept is written")
    }).pipe(Effect.provideService(Metric.MetricRegistry, new Map()))
  )

  it.effect("a batch the database could not take is written at the next flush; one it refused is dropped", () =>
    Effect.gen(function* () {
      const fake = fakeWriter((kind, call) =>
        kind === "metrics" && call === 0 ? connectionRefused() : kind === "events" ? serverError("23514") : undefined
      )
      const recorder = yield* PlatformRecorder.makeWith(fake.writer, {
        bufferCapacity: 4,
        batchSize: 100,
        flushInterval: "1 second"
      })
      recorder.recordMetric(metric(1))
      recorder.recordMetric(metric(2))
      recorder.logEvent({ projectId: "acme", engine: "postgres", type: "pool_closed" })
      yield* TestClock.adjust("1 second")
      let stats = yield* recorder.stats
      assert.strictEqual(stats.failedFlushes, 1)
      assert.include(stats.lastError, "ECONNREFUSED")
      assert.deepStrictEqual(stats.buffered, { metrics: 2, events: 1, health: 0 }, "kept for the next flush")
      // What waits for a retry counts against the capacity: one more fits, the next does not.
      recorder.recordMetric(metric(3))
      recorder.recordMetric(metric(4))
      assert.strictEqual((yield* recorder.stats).dropped.bufferFull, 1)

      yield* TestClock.adjust("1 second")
      stats = yield* recorder.stats
      assert.deepStrictEqual(
        fake.sizes("metrics"),
        [2, 2, 1],
        "the failed try, the kept batch again, then the newer one"
      )
      assert.strictEqual(stats.written.metrics, 3)
      assert.strictEqual(stats.dropped.rejected, 1, "the refused event is not tried again")
      assert.deepStrictEqual(stats.buffered, { metrics: 0, events: 0, health: 0 })
    })
  )

  it.effect("closing writes what it holds", () =>
    Effect.gen(function* () {
      const fake = fakeWriter()
      const scope = yield* Scope.make()
      const recorder = yield* PlatformRecorder.makeWith(fake.writer, { flushInterval: "1 minute" }).pipe(
        Scope.provide(scope)
      )
      recorder.recordMetric(metric(1))
      recorder.logEvent({ projectId: "acme", engine: "postgres", type: "pool_closed" })
      yield* Scope.close(scope, Exit.void)
      assert.deepStrictEqual(fake.sizes("metrics"), [1])
      assert.deepStrictEqual(fake.sizes("events"), [1])
      const stats = yield* recorder.stats
      assert.strictEqual(stats.dropped.total, 0)
      recorder.recordMetric(metric(2))
      assert.strictEqual((yield* recorder.stats).dropped.shutdown, 1, "after closing, recording is counted as dropped")
    })
  )

  it.effect("closing waits at most flushTimeout for a database that does not answer, then counts what is left", () =>
    Effect.gen(function* () {
      const fake = fakeWriter(() => "hang")
      const scope = yield* Scope.make()
      const recorder = yield* PlatformRecorder.makeWith(fake.writer, {
        flushInterval: "1 minute",
        flushTimeout: "5 seconds"
      }).pipe(Scope.provide(scope))
      recorder.recordMetric(metric(1))
      recorder.recordHealth({ projectId: "acme", engine: "postgres", status: "healthy" })
      const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
      yield* TestClock.adjust("4 seconds")
      assert.isUndefined(closing.pollUnsafe(), "still trying")
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(closing)
      const stats = yield* recorder.stats
      assert.deepStrictEqual(stats.dropped, { total: 2, bufferFull: 0, rejected: 0, shutdown: 2 })
      assert.deepStrictEqual(stats.buffered, { metrics: 0, events: 0, health: 0 })
    })
  )

  it.effect("a duration option that is not one is an InvalidConfig naming it", () =>
    Effect.gen(function* () {
      const { writer } = fakeWriter()
      const cases: ReadonlyArray<readonly [string, PlatformRecorder.Options]> = [
        ["platform.flushInterval", { flushInterval: "often" as Duration.Input }],
        ["platform.flushTimeout", { flushTimeout: -1 }]
      ]
      for (const [field, options] of cases) {
        const error = yield* Effect.flip(PlatformRecorder.makeWith(writer, options))
        assert.strictEqual(error.field, field)
      }
    })
  )
})
