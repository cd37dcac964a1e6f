/**
 * Statements on a project's binding, inside a guarded attempt: a single statement borrows a connection of the
 * target's pool for exactly that statement (`runOn`); a transaction, a stream or `sql.reserve` holds an exclusive
 * one until its scope closes (`reserveOn`). Both keep the pool's counts (waiting, in flight, reserved) right on
 * every exit, interruption included, because the pool's statistics and its generation changes depend on them.
 *
 * This is the per-statement hot path: no span, no clock service, one `performance.now()` pair for the acquire time.
 *
 * @since 0.1.0
 */
import type * as PgConnection from "@effect/sql-pg/PgConnection"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { Connection } from "effect/sql/SqlConnection"
import { ConnectionError, SqlError, UnknownError } from "effect/sql/SqlError"
import { CurrentProject, type ProjectHandle } from "@tenantpool/core/CurrentProject"
import type { Target } from "@tenantpool/core/Target"
import * as PgError from "../PgError.ts"
import { cancelEpoch, makeConnection, reapAbandoned } from "./pgConnection.ts"
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
  /** Records how long a checkout waited (the guard's acquire histogram). */
  readonly recordAcquire: (project: ProjectHandle, seconds: number) => void
  /** Runs background work (stopping an abandoned statement) in the engine's scope. */
  readonly fork: (effect: Effect.Effect<void>) => void
}

/** A `SqlError` of the connection kind (retried for reads, counted by the breakers). */
export const connectionError = (message: string, operation: string): SqlError =>
  new SqlError({ reason: new ConnectionError({ cause: new Error(message), message, operation }) })

const abandonError = connectionError("PgConnection: abandoned statement did not stop after cancel", "cancel")

const isCollateralCancel = (conn: PgConnection.PgConnection | undefined, epoch: number, error: SqlError) =>
  conn !== undefined && cancelEpoch(conn) !== epoch && PgError.sqlState(error) === "57014"

/**
 * Runs one statement on a connection borrowed for it. A statement canceled by a cancel meant for an abandoned
 * statement ahead of it on a multiplexed connection runs once more (it was not applied).
 */
export const runOn = <A>(
  sessions: Sessions,
  b: Binding,
  exec: (conn: PgConnection.PgConnection) => Effect.Effect<A, SqlError>,
  retried = false
): Effect.Effect<A, SqlError> =>
  Effect.suspend(() => {
    const tp = b.pool
    const gen = tp.use()
    if (gen === undefined) return Effect.fail(connectionError("PgEngine: the target's pool is closed", "query"))
    const multiplex = sessions.multiplex
    const started = performance.now()
    let conn: PgConnection.PgConnection | undefined
    let epoch = 0
    tp.pending++
    const once = gen.pool.use((c) => {
      conn = c
      tp.pending--
      tp.inFlight++
      sessions.recordAcquire(b.project, (performance.now() - started) / 1000)
      if (multiplex) epoch = cancelEpoch(c)
      return exec(c)
    })
    // A finalizer, not a continuation: it must also run when the attempt is interrupted (timeout, caller gone).
    const settled = Effect.onExit(once, (exit) => {
      if (conn === undefined) tp.pending--
      else tp.inFlight--
      tp.release(gen)
      // An interrupted statement on a multiplexed connection is only marked abandoned by sql-pg: stop it.
      if (multiplex && conn !== undefined && exit._tag === "Failure" && Cause.hasInterrupts(exit.cause)) {
        const c = conn
        sessions.fork(reapAbandoned(c, () => gen.pool.invalidate(c), abandonError))
      }
      return Effect.void
    })
    if (!multiplex || retried) return settled
    // Canceled by a cancel meant for an abandoned statement ahead of it: it was not applied, run it again.
    return Effect.catchIf(
      settled,
      (error) => isCollateralCancel(conn, epoch, error),
      () => runOn(sessions, b, exec, true)
    )
  })

/** A statement of another project on a transaction's connection is refused. */
const belongsTo = (project: ProjectHandle): Effect.Effect<void, SqlError> =>
  Effect.withFiber((fiber) => {
    const current = fiber.getRef(CurrentProject)
    if (current === undefined || current.id === project.id) return Effect.void
    const message = `PgEngine: a statement of project "${current.id}" ran on a connection reserved by project "${project.id}"`
    return Effect.fail(new SqlError({ reason: new UnknownError({ cause: new Error(message), message }) }))
  })

/** Reserves an exclusive connection of the binding's pool until the current scope closes. */
export const reserveOn = (sessions: Sessions, b: Binding): Effect.Effect<Connection, SqlError, Scope.Scope> =>
  Effect.suspend(() => {
    const tp = b.pool
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
    return Effect.acquireRelease(Effect.void, () => settle).pipe(
      Effect.andThen(gen.pool.reserve),
      Effect.map((pinned) => {
        tp.pending--
        tp.reserved++
        state = 1
        sessions.recordAcquire(b.project, (performance.now() - started) / 1000)
        return makeConnection(pinned, belongsTo(b.project))
      }),
      Effect.onError(() => settle)
    )
  })
