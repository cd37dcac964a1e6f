/**
 * The bridge between `@effect/sql-pg` sessions and `effect/sql`: the `Connection` adapter a `SqlClient` runs
 * statements on, and server-side cancellation of statements abandoned on a multiplexed session.
 *
 * Why cancellation needs help: on an exclusive (or pinned) session, sql-pg 4.0.5 handles an interrupted statement
 * itself (it drains the statement, sends a `CancelRequest` after 10 ms, and retires the session unless the backend
 * confirms with 57014). On a multiplexed session it only marks the statement abandoned: the backend keeps running
 * it, and every statement pipelined behind it on that session waits for it (measured: an abandoned
 * `pg_sleep(10)` delayed the next statement on the session by 7.7 s). `reapAbandoned` closes that gap: while an
 * abandoned statement is on the wire, it sends a `CancelRequest` when that statement reaches the head of the
 * pipeline (the one the backend is running), repeats it if the statement ignores it, and after 5 s of no effect
 * kills the session. A cancel that lands a moment late hits the next statement instead; `cancelEpoch` lets that
 * statement's runner recognise the collateral 57014 and run it again (a canceled statement was not applied).
 *
 * The multiplexed pipeline state (`pipelineInFlight`, `pipelineHead`, `cancel`, `fatal`, `deadWith`) is internal to
 * sql-pg's `PgConnectionImpl`: `muxView` checks for every field it reads and reports `undefined` when they are not
 * there, so a different sql-pg degrades to "retire the session" rather than misbehaving.
 *
 * @since 0.1.0
 */
import type * as PgConnection from "@effect/sql-pg/PgConnection"
import type * as Arr from "effect/Array"
import * as Effect from "effect/Effect"
import type { Connection } from "effect/sql/SqlConnection"
import type { SqlError } from "effect/sql/SqlError"
import * as Stream from "effect/Stream"

type TransformRows = (<A extends object>(row: ReadonlyArray<A>) => ReadonlyArray<A>) | undefined

/**
 * What the engine adds around every statement on a held connection (a transaction's, a stream's, `sql.reserve`'s):
 * checks before it (the project it belongs to, the protections, the lease's deadline) and a translation of its
 * failure (a statement cut off by the lease's end reports the lease's verdict).
 */
export interface Around {
  readonly statement: <A>(
    sql: string,
    params: ReadonlyArray<unknown>,
    run: Effect.Effect<A, SqlError>
  ) => Effect.Effect<A, SqlError>
  readonly stream: (
    sql: string,
    params: ReadonlyArray<unknown>,
    rows: Stream.Stream<PgConnection.Row, SqlError>
  ) => Stream.Stream<PgConnection.Row, SqlError>
}

/** `effect/sql`'s `Connection` over one sql-pg session (the same shape as sql-pg's own, which it does not export). */
export const makeConnection = (conn: PgConnection.PgConnection, around?: Around | undefined): Connection => {
  const guard = <A>(sql: string, params: ReadonlyArray<unknown>, effect: Effect.Effect<A, SqlError>) =>
    around === undefined ? effect : around.statement(sql, params, effect)
  const rows = (sql: string, params: ReadonlyArray<unknown>, prepare: boolean, transform: TransformRows) => {
    const query = Effect.map(conn.query(sql, params, prepare), (result) => result.rows)
    return guard(sql, params, transform === undefined ? query : Effect.map(query, transform))
  }
  return {
    execute: (sql, params, transform) => rows(sql, params, true, transform),
    executeUnprepared: (sql, params, transform) => rows(sql, params, false, transform),
    executeRaw: (sql, params) => guard(sql, params, conn.query(sql, params)),
    executeValues: (sql, params) => guard(sql, params, conn.queryValues(sql, params)),
    executeValuesUnprepared: (sql, params) => guard(sql, params, conn.queryValues(sql, params, false)),
    executeStream: (sql, params, transform) => {
      const stream = conn.stream(sql, params)
      const mapped =
        transform === undefined
          ? stream
          : Stream.mapArray(stream, (chunk) => transform(chunk) as Arr.NonEmptyReadonlyArray<PgConnection.Row>)
      return around === undefined ? mapped : around.stream(sql, params, mapped)
    }
  }
}

/** The fields of sql-pg's session (`PgConnectionImpl`, the `base` of a pinned view) that `terminate` uses. */
interface SessionView {
  readonly cancel: Effect.Effect<void>
  readonly fatal: (error: SqlError, destroySocket?: boolean) => void
}

const sessionOf = (conn: PgConnection.PgConnection): SessionView | undefined => {
  const base = ((conn as { readonly base?: unknown }).base ?? conn) as Partial<Record<keyof SessionView, unknown>>
  return Effect.isEffect(base.cancel) && typeof base.fatal === "function" ? (base as SessionView) : undefined
}

/**
 * Ends a held session on the server at once: a `CancelRequest` stops what it runs, and closing its socket ends
 * the backend (rolling back its transaction, freeing its locks and its slot in `max_connections`) even while the
 * holder keeps its scope open. The pool replaces it. Without sql-pg's internals, only the cancel is sent.
 * A pinned view already released (the session may be someone else's now) is left alone.
 */
export const terminate = (conn: PgConnection.PgConnection, error: SqlError): Effect.Effect<void> =>
  Effect.suspend(() => {
    if ((conn as { readonly released?: unknown }).released === true) return Effect.void
    const session = sessionOf(conn)
    if (session === undefined) return conn.interrupt
    // Both start now, in this order: the cancel captures the session's key before the socket goes.
    return Effect.asVoid(
      Effect.all([session.cancel, Effect.sync(() => session.fatal(error))], { concurrency: "unbounded" })
    )
  })

// ---------------------------------------------------------------------------------------------------------------
// Multiplexed sessions: cancelling abandoned statements
// ---------------------------------------------------------------------------------------------------------------

interface PipelineEntry {
  readonly abandoned: boolean
}

/** The fields of sql-pg's `PgConnectionImpl` this module reads (sql-pg 4.0.5). */
interface MuxView {
  readonly multiplex: boolean
  readonly pinned: boolean
  readonly deadWith: unknown
  readonly pipelineInFlight: ReadonlyArray<PipelineEntry>
  readonly pipelineHead: number
  readonly cancel: Effect.Effect<void>
  readonly fatal: (error: SqlError, destroySocket?: boolean) => void
}

/** The session's multiplexing internals, or `undefined` when this sql-pg does not have them. */
export const muxView = (conn: PgConnection.PgConnection): MuxView | undefined => {
  const view = conn as unknown as Partial<Record<keyof MuxView, unknown>>
  return typeof view.multiplex === "boolean" &&
    typeof view.pinned === "boolean" &&
    Array.isArray(view.pipelineInFlight) &&
    typeof view.pipelineHead === "number" &&
    Effect.isEffect(view.cancel) &&
    typeof view.fatal === "function" &&
    "deadWith" in view
    ? (view as unknown as MuxView)
    : undefined
}

const epochs = new WeakMap<object, number>()

/** How many cancels this process has sent to the session so far. */
export const cancelEpoch = (conn: PgConnection.PgConnection): number => epochs.get(conn) ?? 0

const bumpEpoch = (conn: PgConnection.PgConnection) => epochs.set(conn, cancelEpoch(conn) + 1)

const reaping = new WeakSet<object>()

/** How often the pipeline is looked at while an abandoned statement is on it. */
const pollMillis = 2
/** A statement that ignores a cancel this long gets another one. */
const resendMillis = 250
/** After this long the session is given up on (sql-pg's own drain bound for exclusive sessions). */
const giveUpMillis = 5_000

const hasAbandonedInFlight = (view: MuxView): boolean => {
  const inFlight = view.pipelineInFlight
  for (let i = view.pipelineHead; i < inFlight.length; i++) if (inFlight[i]!.abandoned) return true
  return false
}

/**
 * Stops the abandoned statements of a multiplexed session on the server (see the module comment). `giveUp` runs
 * when they do not stop within 5 s (the engine invalidates the session in its pool). Runs once per session at a
 * time; a no-op for exclusive sessions, whose abandoned statements sql-pg cancels itself. The engine runs it in
 * a fiber of its scope, so shutdown interrupts it.
 */
export const reapAbandoned = (
  conn: PgConnection.PgConnection,
  giveUp: (error: SqlError) => Effect.Effect<void>,
  error: SqlError
): Effect.Effect<void> =>
  Effect.clockWith((clock) => {
    const view = muxView(conn)
    if (view === undefined) return giveUp(error)
    if (!view.multiplex || view.pinned || reaping.has(conn)) return Effect.void
    reaping.add(conn)
    // The clock service, not Date.now(): this runs after an interruption, off the statement path, and its waits
    // are `Effect.sleep`s, so a test clock drives the whole of it.
    const started = clock.currentTimeMillisUnsafe()
    let target: PipelineEntry | undefined
    let sentAt = 0
    const step: Effect.Effect<void> = Effect.suspend(() => {
      if (view.deadWith !== undefined || !hasAbandonedInFlight(view)) return Effect.void
      const now = clock.currentTimeMillisUnsafe()
      if (now - started > giveUpMillis) {
        view.fatal(error)
        return giveUp(error)
      }
      const head = view.pipelineInFlight[view.pipelineHead]
      const send = head !== undefined && head.abandoned && (head !== target || now - sentAt >= resendMillis)
      const wait = Effect.andThen(Effect.sleep(pollMillis), step)
      if (!send) return wait
      target = head
      sentAt = now
      bumpEpoch(conn)
      return Effect.andThen(view.cancel, wait)
    })
    return Effect.ensuring(
      step,
      Effect.sync(() => reaping.delete(conn))
    )
  })
