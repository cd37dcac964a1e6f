/**
 * Statements on a project's binding, inside a guarded attempt, and connections held for a lease.
 *
 * Two lanes (the concurrency design; measured figures in the README):
 * - **Pipelined**: a statement whose text ran short lately (under `slowMillis`, a moving average per target) is
 *   pipelined on a shared connection of the target's pool, as sql-pg's multiplexing does: many statements per
 *   round trip, no connection of its own.
 * - **Exclusive**: a statement that ran long, or whose duration is not known yet, takes a connection of its own:
 *   one of the project's slots (its tier's `maxPool`, `gate.ts`) and an exclusive checkout. So slow statements run
 *   side by side on the server up to the project's pool size instead of queueing behind each other on one shared
 *   connection, and never sit in front of another project's short statements.
 * With `multiplex: false` every statement is exclusive. Transactions, streams and `sql.reserve` hold an exclusive
 * connection (and a slot) for their lease (`reserveOn`).
 *
 * Every path reports its progress to the attempt (`waitingFor("a connection")` until the statement is handed to
 * the driver, `sending()` then) and keeps the pool's counts (waiting, in flight, reserved) right on every exit,
 * interruption included, because the pool's statistics and its generation changes depend on them. The pipelined
 * lane is the per-statement hot path: no span, no clock service, one `performance.now()` pair.
 *
 * @since 0.1.0
 */
import type * as PgConnection from "@effect/sql-pg/PgConnection"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { ConnectionError, SqlError, UnknownError } from "effect/sql/SqlError"
import type { AttemptSignal } from "@tenantpool/core/Engine"
import { CurrentProject, type ProjectHandle } from "@tenantpool/core/CurrentProject"
import type { Target } from "@tenantpool/core/Target"
import * as PgError from "../PgError.ts"
import { type Slot, slotScoped, withSlot } from "./gate.ts"
import { cancelEpoch, reapAbandoned } from "./pgConnection.ts"
import type { Member, TargetPool } from "./targetPool.ts"

/** A project's binding to its target's pool (the engine's `Binding`). */
export interface Binding {
  readonly project: ProjectHandle
  readonly target: Target
  readonly pool: TargetPool
  readonly member: Member
}

/** What the statement runners share: the pool mode and the engine's hooks. */
export interface Sessions {
  readonly multiplex: boolean
  /** A statement text whose recent duration is at least this (milliseconds) runs on a connection of its own. */
  readonly slowMillis: number
  /** Records how long a checkout waited (the guard's acquire histogram). */
  readonly recordAcquire: (project: ProjectHandle, seconds: number) => void
  /** Runs background work (stopping an abandoned statement) in the engine's scope. */
  readonly fork: (effect: Effect.Effect<void>) => void
}

/** The resource an attempt waits for before its statement is sent (named in a `Timeout`). */
export const connectionResource = "a connection"

/** A `SqlError` of the connection kind (retried for reads, counted by the breakers). */
export const connectionError = (message: string, operation: string): SqlError =>
  new SqlError({ reason: new ConnectionError({ cause: new Error(message), message, operation }) })

const abandonError = connectionError("PgConnection: abandoned statement did not stop after cancel", "cancel")

const isCollateralCancel = (conn: PgConnection.PgConnection | undefined, epoch: number, error: SqlError) =>
  conn !== undefined && cancelEpoch(conn) !== epoch && PgError.sqlState(error) === "57014"

/**
 * Waits until the target's pool may open a generation within the fleet's share (`TargetPool.mustWait`), then runs
 * `next`; the wait is the attempt's wait for a connection, bounded by its timeout like any other.
 */
const waitForShare = <A, E, R>(
  tp: TargetPool,
  signal: AttemptSignal | undefined,
  next: () => Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> => {
  signal?.waitingFor(connectionResource)
  return Effect.andThen(tp.ready, Effect.suspend(next))
}

/**
 * When the last pipelined statement on a connection completed. Replies on a pipelined connection come back in
 * order, so a statement's own duration is the time from the later of its hand-over and the previous reply on its
 * connection to its reply: the time it waited behind other statements in the pipeline (and for this process's
 * event loop) is not its own. Counted from the hand-over alone, a 0.1 ms lookup under 100 in flight "took" the
 * whole pipeline's latency, crossed `slowMillis` and left the pipeline for an exclusive connection, which made the
 * pipeline slower still (measured: 5 to 7 times the socket writes of raw sql-pg, 0.2 to 0.5x its throughput).
 */
const lastReply = new WeakMap<PgConnection.PgConnection, number>()

/** Whether a statement text ran short lately on this target (unknown texts are not). */
const isShort = (sessions: Sessions, tp: TargetPool, sql: string): boolean => {
  if (!sessions.multiplex) return false
  const millis = tp.latency.get(sql)
  return millis !== undefined && millis < sessions.slowMillis
}

/**
 * Runs one statement on the lane its recent duration calls for (see the module comment). `sql` is the statement's
 * text, the key of its duration.
 */
export const runStatement = <A>(
  sessions: Sessions,
  b: Binding,
  sql: string,
  exec: (conn: PgConnection.PgConnection) => Effect.Effect<A, SqlError>,
  signal?: AttemptSignal | undefined
): Effect.Effect<A, SqlError> =>
  isShort(sessions, b.pool, sql)
    ? pipelined(sessions, b, sql, exec, signal, false)
    : exclusive(sessions, b, sql, exec, signal)

/**
 * The pipelined lane. A statement canceled by a cancel meant for an abandoned statement ahead of it on its
 * connection runs once more (it was not applied).
 */
const pipelined = <A>(
  sessions: Sessions,
  b: Binding,
  sql: string,
  exec: (conn: PgConnection.PgConnection) => Effect.Effect<A, SqlError>,
  signal: AttemptSignal | undefined,
  retried: boolean
): Effect.Effect<A, SqlError> =>
  Effect.suspend(() => {
    const tp = b.pool
    if (tp.mustWait()) return waitForShare(tp, signal, () => pipelined(sessions, b, sql, exec, signal, retried))
    const gen = tp.use()
    if (gen === undefined) return Effect.fail(connectionError("PgEngine: the target's pool is closed", "query"))
    const started = performance.now()
    let sentAt = 0
    let conn: PgConnection.PgConnection | undefined
    let epoch = 0
    tp.pending++
    signal?.waitingFor(connectionResource)
    const once = gen.pool.use((c) => {
      conn = c
      tp.pending--
      tp.inFlight++
      sentAt = performance.now()
      sessions.recordAcquire(b.project, (sentAt - started) / 1000)
      epoch = cancelEpoch(c)
      signal?.sending()
      return exec(c)
    })
    // A finalizer, not a continuation: it must also run when the attempt is interrupted (timeout, caller gone).
    const settled = Effect.onExit(once, (exit) => {
      if (conn === undefined) tp.pending--
      else {
        const now = performance.now()
        tp.inFlight--
        tp.observe(sql, now - Math.max(sentAt, lastReply.get(conn) ?? 0))
        lastReply.set(conn, now)
        if (exit._tag === "Success") gen.okAt = now
      }
      tp.release(gen)
      // An interrupted statement on a multiplexed connection is only marked abandoned by sql-pg: stop it.
      if (conn !== undefined && exit._tag === "Failure" && Cause.hasInterrupts(exit.cause)) {
        const c = conn
        sessions.fork(reapAbandoned(c, () => gen.pool.invalidate(c), abandonError))
      }
      return Effect.void
    })
    if (retried) return settled
    // Canceled by a cancel meant for an abandoned statement ahead of it: it was not applied, run it again.
    return Effect.catchIf(
      settled,
      (error) => isCollateralCancel(conn, epoch, error),
      () => pipelined(sessions, b, sql, exec, signal, true)
    )
  })

/**
 * The exclusive lane: one of the project's slots, then a connection of its own for exactly this statement. An
 * interrupted statement is drained and canceled by sql-pg (exclusive and pinned sessions).
 */
const exclusive = <A>(
  sessions: Sessions,
  b: Binding,
  sql: string,
  exec: (conn: PgConnection.PgConnection) => Effect.Effect<A, SqlError>,
  signal: AttemptSignal | undefined
): Effect.Effect<A, SqlError> =>
  Effect.suspend(() => {
    const tp = b.pool
    if (tp.mustWait()) return waitForShare(tp, signal, () => exclusive(sessions, b, sql, exec, signal))
    const gen = tp.use()
    if (gen === undefined) return Effect.fail(connectionError("PgEngine: the target's pool is closed", "query"))
    const started = performance.now()
    let sentAt = 0
    let running = false
    tp.pending++
    signal?.waitingFor(connectionResource)
    const run = (c: PgConnection.PgConnection) => {
      running = true
      tp.pending--
      tp.inFlight++
      tp.exclusive++
      sentAt = performance.now()
      sessions.recordAcquire(b.project, (sentAt - started) / 1000)
      signal?.sending()
      return exec(c)
    }
    // On a multiplexed pool `reserve` takes a connection out of circulation (waiting for the short statements
    // pipelined on it); on an exclusive pool every checkout is exclusive already.
    const checkout = sessions.multiplex
      ? Effect.scoped(Effect.flatMap(tp.checkout.withPermit(gen.pool.reserve), run))
      : gen.pool.use(run)
    return Effect.onExit(
      withSlot(b.member.gate, () => checkout),
      (exit) => {
        if (!running) tp.pending--
        else {
          const now = performance.now()
          tp.inFlight--
          tp.exclusive--
          tp.observe(sql, now - sentAt)
          if (exit._tag === "Success") gen.okAt = now
        }
        tp.release(gen)
        return Effect.void
      }
    )
  })

/** A statement of another project on a held connection is refused. */
export const belongsTo = (project: ProjectHandle): Effect.Effect<void, SqlError> =>
  Effect.withFiber((fiber) => {
    const current = fiber.getRef(CurrentProject)
    if (current === undefined || current.id === project.id) return Effect.void
    const message = `PgEngine: a statement of project "${current.id}" ran on a connection reserved by project "${project.id}"`
    return Effect.fail(new SqlError({ reason: new UnknownError({ cause: new Error(message), message }) }))
  })

/** A connection held exclusively for a lease, with the project's slot it occupies. */
export interface Reserved {
  readonly conn: PgConnection.PgConnection
  readonly slot: Slot
}

/**
 * Reserves an exclusive connection of the binding's pool, and one of the project's slots, until the current scope
 * closes. `signal` is the lease's: waiting for the connection, then holding it.
 */
export const reserveOn = (
  sessions: Sessions,
  b: Binding,
  signal?: AttemptSignal | undefined
): Effect.Effect<Reserved, SqlError, Scope.Scope> =>
  Effect.suspend(() => {
    const tp = b.pool
    if (tp.mustWait()) return waitForShare(tp, signal, () => reserveOn(sessions, b, signal))
    const gen = tp.use()
    if (gen === undefined) return Effect.fail(connectionError("PgEngine: the target's pool is closed", "reserve"))
    const started = performance.now()
    // 0 waiting for a connection, 1 holding one, 2 settled.
    let state = 0
    const settle = Effect.sync(() => {
      if (state === 0) tp.pending--
      else if (state === 1) tp.reserved--
      else return
      state = 2
      tp.release(gen)
    })
    tp.pending++
    signal?.waitingFor(connectionResource)
    // Finalizers run in reverse: the connection goes back first, then the slot, then the counts.
    return Effect.acquireRelease(Effect.void, () => settle).pipe(
      Effect.andThen(slotScoped(b.member.gate)),
      Effect.flatMap((slot) =>
        Effect.map(
          sessions.multiplex ? tp.checkout.withPermit(gen.pool.reserve) : gen.pool.reserve,
          (conn): Reserved => {
            tp.pending--
            tp.reserved++
            state = 1
            sessions.recordAcquire(b.project, (performance.now() - started) / 1000)
            signal?.sending()
            return { conn, slot }
          }
        )
      ),
      Effect.onError(() => settle)
    )
  })
