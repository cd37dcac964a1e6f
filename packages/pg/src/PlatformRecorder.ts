/**
 * The recorder: metrics, audit events and health results written to the `platform` schema in batches, off the hot
 * path.
 *
 * - Recording is a synchronous offer to a bounded `Queue`: it never waits for, and never fails because of, the
 *   platform database, so a slow or stopped platform database never delays a tenant's statement. What does not fit
 *   (`bufferCapacity` counts what waits in the queue and the batch being written) is dropped and counted
 *   (`tenantpool_platform_dropped_total` with `kind` and `reason`, and `stats`).
 * - A fiber of the recorder's scope writes what waits every `flushInterval`, or as soon as `batchSize` items wait,
 *   in batches of at most `batchSize` through the helpers `record_database_metrics(jsonb)` and
 *   `log_database_events(jsonb)`, and `update_database_health` per health change. A batch the database refuses
 *   (validation) is dropped and counted as `rejected`; a batch that fails for want of the database is kept and
 *   written first at the next flush, so delivery is at least once across timeouts.
 * - Closing the scope stops the fiber and writes what is left, for at most `flushTimeout`; whatever is still
 *   unwritten then is dropped and counted as `shutdown`.
 * - `layerTenancy` records the tenancy service's events and samples its per-project counters.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Latch from "effect/Latch"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import * as Stream from "effect/Stream"
import type * as SqlClient from "effect/sql/SqlClient"
import { isSqlError, type SqlError } from "effect/sql/SqlError"
import * as Durations from "@tenantpool/core/Durations"
import type { InvalidConfig } from "@tenantpool/core/Errors"
import type { TenancyEvent } from "@tenantpool/core/Events"
import { Tenancy } from "@tenantpool/core/Tenancy"
import { reasonOf } from "./internal/platform.ts"
import * as Rows from "./internal/recorderRows.ts"
import * as PgError from "./PgError.ts"

/**
 * Options of the recorder.
 *
 * @category models
 * @since 0.1.0
 */
export interface Options {
  /** Items the recorder buffers at most (default 10,000); beyond it they are dropped and counted. */
  readonly bufferCapacity?: number | undefined
  /** Items per batch call, and the number waiting that triggers an early flush (default 500). */
  readonly batchSize?: number | undefined
  /** How often the buffer is flushed (default 1 second). */
  readonly flushInterval?: Duration.Input | undefined
  /** Bound of one batch write, and of the last flush when the recorder closes (default 5 seconds). */
  readonly flushTimeout?: Duration.Input | undefined
}

/**
 * A metric sample for `platform.database_metrics`.
 *
 * @category models
 * @since 0.1.0
 */
export interface MetricSample extends Rows.MetricSample {}

/**
 * An audit event for `platform.database_connection_logs`.
 *
 * @category models
 * @since 0.1.0
 */
export interface EventRecord extends Rows.EventRecord {}

/**
 * A health-check result for `update_database_health`.
 *
 * @category models
 * @since 0.1.0
 */
export interface HealthRecord extends Rows.HealthRecord {}

/**
 * Counters of the recorder.
 *
 * @category models
 * @since 0.1.0
 */
export interface WriterStats {
  readonly buffered: { readonly metrics: number; readonly events: number; readonly health: number }
  readonly written: { readonly metrics: number; readonly events: number; readonly health: number }
  /** Items dropped: the buffer was full, the database refused them, or they were left at shutdown. */
  readonly dropped: {
    readonly total: number
    readonly bufferFull: number
    readonly rejected: number
    readonly shutdown: number
  }
  /** Tenancy events that name no project (target-wide breaker transitions), not recorded. */
  readonly unattributed: number
  readonly flushes: number
  readonly failedFlushes: number
  /** The last flush failure, as the server or the client put it (never a secret). */
  readonly lastError: string | undefined
}

/**
 * A row of `record_database_metrics` or `log_database_events` (their jsonb array's element).
 *
 * @category models
 * @since 0.1.0
 */
export type Row = Readonly<Record<string, unknown>>

/**
 * Where the recorder's batches go: the platform database's helpers (`make`), or a fake in tests (`makeWith`).
 *
 * @category models
 * @since 0.1.0
 */
export interface Writer {
  readonly metrics: (rows: ReadonlyArray<Row>) => Effect.Effect<unknown, SqlError>
  readonly events: (rows: ReadonlyArray<Row>) => Effect.Effect<unknown, SqlError>
  readonly health: (health: HealthRecord) => Effect.Effect<unknown, SqlError>
}

/**
 * The counter of recorder items dropped, by `kind` (`metric`, `event`, `health`) and `reason` (`buffer_full`,
 * `rejected`, `shutdown`).
 *
 * @category metrics
 * @since 0.1.0
 */
export const droppedTotal = Metric.counter("tenantpool_platform_dropped_total", {
  description: "Platform metric, event and health rows dropped (kind, reason)",
  incremental: true
})

/**
 * Items waiting in the recorder's buffer.
 *
 * @category metrics
 * @since 0.1.0
 */
export const bufferedItems = Metric.gauge("tenantpool_platform_buffered", {
  description: "Platform metric, event and health rows waiting to be written"
})

/**
 * The recorder.
 *
 * @category services
 * @since 0.1.0
 */
export class PlatformRecorder extends Context.Service<
  PlatformRecorder,
  {
    /** Buffers a metric sample (never blocks; dropped and counted when the buffer is full). */
    readonly recordMetric: (sample: MetricSample) => void
    /** Buffers an audit event (never blocks; dropped and counted when the buffer is full). */
    readonly logEvent: (event: EventRecord) => void
    /** Buffers a health result (never blocks; dropped and counted when the buffer is full). */
    readonly recordHealth: (health: HealthRecord) => void
    /** Buffers the rows a tenancy event calls for (see `layerTenancy`). */
    readonly recordEvent: (event: TenancyEvent) => void
    /** Writes what is buffered now. */
    readonly flush: Effect.Effect<void>
    /** The recorder's counters. */
    readonly stats: Effect.Effect<WriterStats>
  }
>()("@tenantpool/pg/PlatformRecorder") {}

// ---------------------------------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------------------------------

type Kind = "metric" | "event" | "health"
type DropReason = "buffer_full" | "rejected" | "shutdown"
type Item =
  | { readonly kind: "metric"; readonly row: Row }
  | { readonly kind: "event"; readonly row: Row }
  | { readonly kind: "health"; readonly row: HealthRecord }

interface State {
  readonly writer: Writer
  readonly queue: Queue.Queue<Item>
  readonly capacity: number
  readonly batchSize: number
  readonly flushTimeout: Duration.Duration
  /** Opened when `batchSize` items wait: the flusher need not wait for the end of its interval. */
  readonly batchReady: Latch.Latch
  readonly clock: Clock.Clock
  readonly context: Context.Context<never>
  /** Taken from the queue and not written yet (being written, or kept after a failure), oldest first. */
  held: ReadonlyArray<Item>
  /** Items per kind in the queue and in `held`. */
  readonly buffered: Record<Kind, number>
  readonly written: Record<Kind, number>
  readonly dropped: Record<DropReason, number>
  readonly dropCells: Map<string, Metric.Metric<number, unknown>>
  unattributed: number
  flushes: number
  failedFlushes: number
  lastError: string | undefined
  readonly lastOverload: Map<string, number>
}

const kinds: ReadonlyArray<Kind> = ["metric", "event", "health"]

const total = (s: State) => s.buffered.metric + s.buffered.event + s.buffered.health

const drop = (s: State, kind: Kind, reason: DropReason, n: number) => {
  if (n <= 0) return
  s.dropped[reason] += n
  const key = `${kind}/${reason}`
  let cell = s.dropCells.get(key)
  if (cell === undefined) {
    cell = Metric.withAttributes(droppedTotal, { kind, reason }) as Metric.Metric<number, unknown>
    s.dropCells.set(key, cell)
  }
  cell.updateUnsafe(n, s.context)
}

/** Offers an item without waiting; counts it as dropped when it does not fit. */
const push = (s: State, item: Item) => {
  if (total(s) >= s.capacity) return drop(s, item.kind, "buffer_full", 1)
  if (!Queue.offerUnsafe(s.queue, item)) return drop(s, item.kind, "shutdown", 1)
  s.buffered[item.kind]++
  if (total(s) >= s.batchSize) s.batchReady.openUnsafe()
}

const recordMetric = (s: State, sample: MetricSample) =>
  push(s, {
    kind: "metric",
    row: {
      project_id: sample.projectId,
      database_type: sample.engine,
      metric_name: sample.name,
      value: sample.value,
      labels: sample.labels ?? {},
      time: (sample.time ?? new Date(s.clock.currentTimeMillisUnsafe())).toISOString()
    }
  })

const logEvent = (s: State, event: EventRecord) =>
  push(s, {
    kind: "event",
    row: {
      project_id: event.projectId,
      database_type: event.engine,
      event_type: event.type,
      message: event.message ?? null,
      metadata: event.metadata ?? {},
      severity: event.severity ?? "info"
    }
  })

const recordEvent = (s: State, event: TenancyEvent) => {
  if (event._tag === "Overloaded") {
    // Refusals come in bursts: one row per project and engine per second is enough for an audit log.
    const key = `${event.projectId}/${event.engine}`
    if (event.at - (s.lastOverload.get(key) ?? 0) < 1000) return
    if (s.lastOverload.size >= 10_000) s.lastOverload.clear()
    s.lastOverload.set(key, event.at)
  }
  const recorded = Rows.eventRows(
    { logEvent: (e) => logEvent(s, e), recordHealth: (h) => push(s, { kind: "health", row: h }) },
    event
  )
  if (!recorded) s.unattributed++
}

// ---------------------------------------------------------------------------------------------------------------
// Flushing
// ---------------------------------------------------------------------------------------------------------------

// A server that answered (with a SQLSTATE) refused the rows: writing them again would fail again.
const refused = (error: unknown) =>
  isSqlError(error) && PgError.sqlState(error) !== undefined && !PgError.isInfrastructure(error)

/**
 * Writes some items of one kind, bounded by `flushTimeout`: "done" when written or refused (dropped), "failed"
 * when the database could not be had (they stay in `held`).
 */
const attempt = (s: State, kind: Kind, items: ReadonlyArray<Item>, write: Effect.Effect<unknown, SqlError>) =>
  Effect.map(Effect.exit(Effect.timeout(write, s.flushTimeout)), (exit): "done" | "failed" => {
    if (exit._tag === "Failure") {
      const found = Cause.findErrorOption(exit.cause)
      const cause = found._tag === "Some" ? found.value : undefined
      s.lastError = reasonOf(cause ?? new Error("defect"))
      if (!refused(cause)) return "failed"
      drop(s, kind, "rejected", items.length)
    } else {
      s.written[kind] += items.length
    }
    s.buffered[kind] -= items.length
    const settled = new Set(items)
    s.held = s.held.filter((item) => !settled.has(item))
    return "done"
  })

/** Writes what `held` holds, metrics, then events, then health one by one; false when the database failed. */
const writeHeld = (s: State) =>
  Effect.gen(function* () {
    for (const kind of kinds) {
      const items = s.held.filter((item) => item.kind === kind)
      if (items.length === 0) continue
      if (kind === "health") {
        for (const item of items) {
          const outcome = yield* attempt(s, kind, [item], s.writer.health(item.row as HealthRecord))
          if (outcome === "failed") return false
        }
        continue
      }
      const rows = items.map((item) => item.row as Row)
      const outcome = yield* attempt(s, kind, items, kind === "metric" ? s.writer.metrics(rows) : s.writer.events(rows))
      if (outcome === "failed") return false
    }
    return true
  })

/**
 * Writes what is buffered when it starts (what arrives meanwhile waits for the next flush), a batch at a time;
 * stops at the first batch the database could not take. True when everything went.
 */
const flushOnce = (s: State): Effect.Effect<boolean> =>
  Effect.gen(function* () {
    s.batchReady.closeUnsafe()
    if (total(s) === 0) return true
    s.flushes++
    let batches = Math.ceil(total(s) / s.batchSize) + 1
    while (batches-- > 0) {
      if (s.held.length === 0) {
        if (Queue.sizeUnsafe(s.queue) === 0) return true
        s.held = yield* Queue.takeBetween(s.queue, 1, s.batchSize)
      }
      if (!(yield* writeHeld(s))) {
        s.failedFlushes++
        return false
      }
    }
    return true
  })

/** Drops (and counts) everything still buffered, with `reason`. */
const dropAll = (s: State, reason: DropReason) =>
  Effect.map(Queue.clear(s.queue), (queued) => {
    for (const item of [...s.held, ...queued]) {
      s.buffered[item.kind]--
      drop(s, item.kind, reason, 1)
    }
    s.held = []
  })

const statsOf = (s: State): WriterStats => ({
  buffered: { metrics: s.buffered.metric, events: s.buffered.event, health: s.buffered.health },
  written: { metrics: s.written.metric, events: s.written.event, health: s.written.health },
  dropped: {
    total: s.dropped.buffer_full + s.dropped.rejected + s.dropped.shutdown,
    bufferFull: s.dropped.buffer_full,
    rejected: s.dropped.rejected,
    shutdown: s.dropped.shutdown
  },
  unattributed: s.unattributed,
  flushes: s.flushes,
  failedFlushes: s.failedFlushes,
  lastError: s.lastError
})

// ---------------------------------------------------------------------------------------------------------------
// Constructors
// ---------------------------------------------------------------------------------------------------------------

/**
 * Builds the recorder on a `Writer` (scoped: closing it stops the flusher and writes what is left, within
 * `flushTimeout`). A duration that is not one is an `InvalidConfig` naming the option.
 *
 * @category constructors
 * @since 0.1.0
 */
export const makeWith = Effect.fnUntraced(function* (
  writer: Writer,
  options?: Options | undefined
): Effect.fn.Return<PlatformRecorder["Service"], InvalidConfig, Scope.Scope> {
  const flushInterval = yield* Durations.millis("platform.flushInterval", options?.flushInterval, "1 second")
  const flushTimeout = yield* Durations.millis("platform.flushTimeout", options?.flushTimeout, "5 seconds")
  const capacity = Math.max(1, options?.bufferCapacity ?? 10_000)
  const s: State = {
    writer,
    queue: yield* Queue.dropping<Item>(capacity),
    capacity,
    batchSize: Math.max(1, Math.min(options?.batchSize ?? 500, 10_000)),
    flushTimeout: Duration.millis(flushTimeout),
    batchReady: yield* Latch.make(false),
    clock: yield* Clock.Clock,
    context: yield* Effect.context<never>(),
    held: [],
    buffered: { metric: 0, event: 0, health: 0 },
    written: { metric: 0, event: 0, health: 0 },
    dropped: { buffer_full: 0, rejected: 0, shutdown: 0 },
    dropCells: new Map(),
    unattributed: 0,
    flushes: 0,
    failedFlushes: 0,
    lastError: undefined,
    lastOverload: new Map()
  }
  const gauge = Metric.registerUnsafe(bufferedItems, s.context, {
    get: () => ({ value: total(s) }),
    update: () => {},
    modify: () => {}
  } as Metric.Metric.Hooks<number, any>)
  yield* Effect.addFinalizer(() => Effect.sync(() => gauge.remove()))

  // Serializes flushes (the flusher, `flush`, and the last one at shutdown).
  const lock = yield* Semaphore.make(1)
  const flush = lock.withPermits(1)(flushOnce(s))
  // Registered before the flusher is forked, so it runs after the flusher has been interrupted.
  yield* Effect.addFinalizer(() =>
    flush.pipe(
      Effect.timeoutOption(s.flushTimeout),
      Effect.andThen(dropAll(s, "shutdown")),
      Effect.andThen(Queue.shutdown(s.queue))
    )
  )
  // The time window: a flush every interval, or earlier when a batch is full; after a failed flush the whole
  // interval, so a platform database that is down is not asked again at every offer.
  const interval = Effect.sleep(Duration.millis(flushInterval))
  const window = (lastOk: boolean) => (lastOk ? Effect.raceFirst(interval, s.batchReady.await) : interval)
  const flusher = (lastOk: boolean): Effect.Effect<never> =>
    Effect.flatMap(Effect.andThen(window(lastOk), flush), flusher)
  yield* Effect.forkScoped(flusher(true))

  return PlatformRecorder.of({
    recordMetric: (sample) => recordMetric(s, sample),
    logEvent: (event) => logEvent(s, event),
    recordHealth: (health) => push(s, { kind: "health", row: health }),
    recordEvent: (event) => recordEvent(s, event),
    flush: Effect.asVoid(flush),
    stats: Effect.sync(() => statsOf(s))
  })
})

/**
 * The writer on the platform database's helpers.
 *
 * @category constructors
 * @since 0.1.0
 */
export const sqlWriter = (sql: SqlClient.SqlClient): Writer => ({
  metrics: (rows) => sql`select platform.record_database_metrics(${JSON.stringify(rows)}::jsonb)`,
  events: (rows) => sql`select platform.log_database_events(${JSON.stringify(rows)}::jsonb)`,
  health: (h) =>
    sql`select platform.update_database_health(${h.projectId}, ${h.engine}, ${h.status},
                                               ${JSON.stringify(h.details ?? {})}::jsonb)`
})

/**
 * Builds the recorder on the platform database's SQL handle (see `makeWith`).
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (
  sql: SqlClient.SqlClient,
  options?: Options | undefined
): Effect.Effect<PlatformRecorder["Service"], InvalidConfig, Scope.Scope> => makeWith(sqlWriter(sql), options)

// ---------------------------------------------------------------------------------------------------------------
// The tenancy service's events and counters
// ---------------------------------------------------------------------------------------------------------------

/**
 * Options of `layerTenancy`.
 *
 * @category models
 * @since 0.1.0
 */
export interface TenancyOptions {
  /** How often live projects' counters are sampled into `platform.database_metrics` (default 10 seconds; 0 off). */
  readonly metricsInterval?: Duration.Input | undefined
}

/**
 * Records the tenancy service's events (pool created/closed, breaker transitions, health, overload) and samples
 * its per-project counters into the platform schema, off the hot path. The subscription and the sampler are fibers
 * of the layer's scope.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerTenancy = (
  options?: TenancyOptions | undefined
): Layer.Layer<never, InvalidConfig, PlatformRecorder | Tenancy> =>
  Layer.effectDiscard(
    Effect.gen(function* () {
      const recorder = yield* PlatformRecorder
      const tenancy = yield* Tenancy
      const interval = yield* Durations.millis("platform.metricsInterval", options?.metricsInterval, "10 seconds", {
        allowZero: true
      })
      yield* Effect.forkScoped(
        Stream.runForEach(tenancy.events, (event) => Effect.sync(() => recorder.recordEvent(event))),
        { startImmediately: true }
      )
      if (interval <= 0) return
      const sample = Effect.gen(function* () {
        const connections = yield* tenancy.connections
        const time = new Date(yield* Clock.currentTimeMillis)
        for (const metric of Rows.samplesOf(connections, time)) recorder.recordMetric(metric)
      })
      yield* Effect.forkScoped(Effect.repeat(sample, Schedule.spaced(Duration.millis(interval))))
    })
  )
