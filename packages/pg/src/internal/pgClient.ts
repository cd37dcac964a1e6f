/**
 * The guarded `SqlClient`: `effect/sql`'s own client built with acquirers of ours (see the `PgEngine` module
 * comment):
 * - a statement outside a transaction is one guarded operation on a *routing* connection (`runStatement` picks its
 *   lane);
 * - a top-level transaction, a stream and `sql.reserve` each hold a *lease* (`EngineHandle.lease`): admitted like a
 *   call, held until they end, bounded by the tier deadline, on a connection reserved under it; when the deadline
 *   passes the work stops on the server (`terminate`) and the holder hears the guard's verdict;
 * - every statement, on whichever path, passes the installed protections with its text and parameters.
 *
 * @since 0.1.0
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import type * as PgConnection from "@effect/sql-pg/PgConnection"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as SqlClient from "effect/sql/SqlClient"
import type { Connection } from "effect/sql/SqlConnection"
import { AuthorizationError, SqlError, SqlSyntaxError, UnknownError } from "effect/sql/SqlError"
import * as Statement from "effect/sql/Statement"
import * as Stream from "effect/Stream"
import type { ProjectHandle } from "@tenantpool/core/CurrentProject"
import type * as EngineContract from "@tenantpool/core/Engine"
import { type GuardError, type ProtectionError, UnknownOutcome } from "@tenantpool/core/Errors"
import * as Protections from "@tenantpool/core/Protections"
import * as PgError from "../PgError.ts"
import type { Slot } from "./gate.ts"
import { type Around, makeConnection, terminate } from "./pgConnection.ts"
import { leavesSessionState, type Ops, opFor } from "./pgOperations.ts"
import { belongsTo, type Binding, connectionError, reserveOn, runStatement, type Sessions } from "./pgSessions.ts"

/** What the client is built from: the guard, the operations, the statement runners and the name transforms. */
export interface ClientOptions {
  readonly handle: EngineContract.EngineHandle<Binding, SqlError>
  readonly ops: Ops<Binding>
  readonly sessions: Sessions
  readonly transformResultNames?: ((name: string) => string) | undefined
  readonly transformQueryNames?: ((name: string) => string) | undefined
  readonly transformJson?: boolean | undefined
}

/** A lease and the connection held under it. */
interface Held {
  lease: EngineContract.Lease<Binding> | undefined
  conn: PgConnection.PgConnection | undefined
  slot: Slot | undefined
  /** The lease's time is up: the connection was terminated, statements on it hear the verdict. */
  expired: boolean
  /** A transaction's lease: whether its connection has been reserved (a `sql.reserve` inside takes its own). */
  taken: boolean
}

const newHeld = (): Held => ({ lease: undefined, conn: undefined, slot: undefined, expired: false, taken: false })

/** The lease of the current top-level transaction. */
const ActiveLease = Context.Reference<Held | undefined>("@tenantpool/pg/PgEngine/ActiveLease", {
  defaultValue: () => undefined
})

const expiredError = connectionError("PgEngine: the lease's deadline passed; its session was ended", "lease")

type TransformRows = (<A extends object>(row: ReadonlyArray<A>) => ReadonlyArray<A>) | undefined

const rows = (conn: PgConnection.PgConnection, sql: string, params: ReadonlyArray<unknown>, prepare: boolean) =>
  Effect.map(conn.query(sql, params, prepare), (result) => result.rows)

const transformed = (
  effect: Effect.Effect<ReadonlyArray<any>, SqlError>,
  transform: TransformRows
): Effect.Effect<ReadonlyArray<any>, SqlError> => (transform === undefined ? effect : Effect.map(effect, transform))

const commit = (conn: Connection): Effect.Effect<void, SqlError> =>
  Effect.flatMap(conn.executeRaw("COMMIT", []) as Effect.Effect<PgConnection.Result, SqlError>, (result) =>
    result.command === "ROLLBACK"
      ? Effect.fail(
          new SqlError({
            reason: new UnknownError({
              cause: new Error("COMMIT rolled back an aborted transaction"),
              message: "PgEngine: COMMIT rolled back an aborted transaction",
              operation: "commit"
            })
          })
        )
      : Effect.void
  )

/**
 * A statement the engine cannot send as given: not text, or text with a NUL byte (the protocol's strings end at
 * NUL; sent, it is a protocol violation that costs the session). A typed error of the caller's, never sent.
 */
export const badStatement = (sql: unknown, params: unknown): SqlError | undefined => {
  const problem =
    sql === uncompilable
      ? "the statement or its parameters could not be compiled (a value of the wrong type, or one that throws when read)"
      : typeof sql !== "string"
        ? `the statement is a ${typeof sql}, not text`
        : sql.indexOf("\u0000") >= 0
          ? "the statement contains a NUL byte (0x00), which PostgreSQL cannot receive"
          : !Array.isArray(params)
            ? "the statement's parameters are not an array"
            : undefined
  if (problem === undefined) return undefined
  const message = `PgEngine: ${problem}`
  return new SqlError({ reason: new SqlSyntaxError({ cause: new Error(message), message, operation: "query" }) })
}

// sql-pg's "Failed to encode query" carries what the encoder threw (a parameter's toString, toJSON or
// Symbol.toPrimitive: it may carry the value itself). The caller's error, without that cause; nothing was sent.
const encodeMessage = "PgEngine: a parameter could not be encoded (a value of the wrong type, or one that throws)"
const scrubEncode = (error: SqlError): SqlError =>
  error.reason instanceof UnknownError && error.reason.message === "PgConnection: Failed to encode query"
    ? new SqlError({
        reason: new SqlSyntaxError({ cause: new Error(encodeMessage), message: encodeMessage, operation: "query" })
      })
    : error

// What the guarded compiler returns for a statement Effect's compiler throws on (`sql.unsafe(text, "not an array")`,
// a value whose coercion throws): `badStatement` refuses it before anything is sent, instead of a defect.
const uncompilable = "\u0000tenantpool: uncompilable statement"

const guardedCompiler = (compiler: Statement.Compiler): Statement.Compiler => ({
  dialect: compiler.dialect,
  compile: (statement, withoutTransform) => {
    try {
      return compiler.compile(statement, withoutTransform)
    } catch {
      return [uncompilable, []]
    }
  },
  get withoutTransform() {
    return guardedCompiler(compiler.withoutTransform)
  }
})

const isRollback = (sql: string): boolean => sql === "ROLLBACK" || sql.startsWith("ROLLBACK TO SAVEPOINT effect_sql_")

// The transaction control statements effect/sql sends itself: not the caller's, not checked by the protections.
const isControl = (sql: string, params: ReadonlyArray<unknown>): boolean =>
  params.length === 0 &&
  (sql === "BEGIN" ||
    sql === "COMMIT" ||
    sql === "ROLLBACK" ||
    /^(SAVEPOINT|RELEASE SAVEPOINT|ROLLBACK TO SAVEPOINT) effect_sql_\d+$/.test(sql))

const sharedSessionMessage =
  "PgEngine: a statement that leaves state on its session (SET without LOCAL, PREPARE, DEALLOCATE, DISCARD, " +
  "LISTEN, LOAD, CREATE TEMP) is refused on a connection other projects share; use SET LOCAL inside withTransaction, or " +
  "the engine's startupParameters"
const sharedSessionError = new SqlError({
  reason: new AuthorizationError({ cause: new Error(sharedSessionMessage), message: sharedSessionMessage })
})

/**
 * The `SqlError` the caller hears for a refusal of `operation`: the guard's, a protection's, or the statement's own.
 *
 * @internal
 */
const refusal = (operation: string) => (error: SqlError | GuardError | ProtectionError) =>
  PgError.toSqlError(error, operation) as SqlError

/**
 * A statement outside a transaction: one guarded operation on a routing connection. `detail` (the statement and its
 * parameters) goes to the installed protections: rate limits, the SQL analyzer, the cost estimator
 * (`@tenantpool/protections`); with none installed it costs one reference read.
 *
 * @internal
 */
const guardedStatement = <A>(
  options: ClientOptions,
  sql: string,
  params: ReadonlyArray<unknown>,
  exec: (conn: PgConnection.PgConnection) => Effect.Effect<A, SqlError>
): Effect.Effect<A, SqlError> => {
  const { handle, ops, sessions } = options
  const bad = badStatement(sql, params)
  if (bad !== undefined) return Effect.fail(bad)
  const op = opFor(ops, sql)
  const checkSession = (op === ops.other || op === ops.ddl) && leavesSessionState(sql)
  return Effect.mapError(
    handle.runEffect(
      op,
      (b, signal) =>
        checkSession && b.pool.members.size > 1
          ? Effect.fail(sharedSessionError)
          : runStatement(sessions, b, sql, (conn) => Effect.mapError(exec(conn), scrubEncode), signal),
      undefined,
      {
        statement: sql,
        params
      }
    ),
    refusal(op.name)
  )
}

// ---- leases: transactions, streams, `sql.reserve` -----------------------------------------------------------------

/**
 * A lease's operation: `base` with a cancel of its own, which ends the lease's connection on the server when its
 * deadline passes (or shutdown abandons it), whatever its holder is doing.
 *
 * @internal
 */
const leaseOp = (
  sessions: Sessions,
  base: EngineContract.Operation<Binding>,
  held: Held
): EngineContract.Operation<Binding> => ({
  ...base,
  cancel: () => {
    held.expired = true
    held.slot?.release()
    if (held.conn !== undefined) sessions.fork(terminate(held.conn, expiredError))
  }
})

/**
 * The verdict for statements on a lease whose time is up (the deadline's Timeout, or ShuttingDown).
 *
 * @internal
 */
const verdict = (held: Held, operation: string): Effect.Effect<never, SqlError> =>
  Effect.flatMap(Effect.flip(held.lease!.expired), (error) => Effect.fail(refusal(operation)(error)))

/**
 * Takes a lease for `base` (checked with `detail` when given) and records it in `held`.
 *
 * @internal
 */
const takeLease = (
  options: ClientOptions,
  base: EngineContract.Operation<Binding>,
  held: Held,
  detail?: { readonly statement: string; readonly params: ReadonlyArray<unknown> }
): Effect.Effect<EngineContract.Lease<Binding>, SqlError, Scope.Scope> => {
  const { handle, sessions } = options
  return Effect.tap(
    Effect.mapError(
      detail === undefined
        ? handle.lease(leaseOp(sessions, base, held))
        : handle.lease(leaseOp(sessions, base, held), detail),
      refusal(base.name)
    ),
    (lease) =>
      Effect.sync(() => {
        held.lease = lease
      })
  )
}

/**
 * The checks before each statement on a held connection: the lease's time, the statement's form, the project's
 * ownership of the connection, the protections (not for effect/sql's own transaction control) and session state on
 * a shared connection.
 *
 * @internal
 */
const beforeHeld = (
  ops: Ops<Binding>,
  held: Held,
  project: ProjectHandle,
  sql: string,
  params: ReadonlyArray<unknown>
): Effect.Effect<void, SqlError> => {
  if (held.expired) return verdict(held, opFor(ops, sql).name)
  const bad = badStatement(sql, params)
  if (bad !== undefined) return Effect.fail(bad)
  const owned = belongsTo(project)
  if (isControl(sql, params)) return owned
  const op = opFor(ops, sql).name
  const checked = Effect.andThen(
    owned,
    Effect.mapError(Protections.check("postgres", op, { statement: sql, params }), refusal(op))
  )
  // A session setting made in a transaction outlives its COMMIT on the connection.
  return held.lease!.binding.pool.members.size > 1 && leavesSessionState(sql)
    ? Effect.andThen(checked, Effect.fail(sharedSessionError))
    : checked
}

/**
 * The translation of a statement's failure on a held connection: the lease's verdict when its time is up, and the
 * meaning of a broken connection under ROLLBACK and COMMIT.
 *
 * @internal
 */
const afterHeld = <A>(
  ops: Ops<Binding>,
  held: Held,
  project: ProjectHandle,
  sql: string,
  effect: Effect.Effect<A, SqlError>
): Effect.Effect<A, SqlError> =>
  Effect.catch(effect, (error) => {
    if (held.expired) return verdict(held, opFor(ops, sql).name)
    // A ROLLBACK on a connection that died: the server ended the session, and with it the transaction, so
    // there is nothing left to roll back. effect/sql makes a failed rollback a defect; the caller hears the
    // body's own error instead.
    if (isRollback(sql) && error.reason._tag === "ConnectionError") return Effect.succeed(undefined as A)
    // A COMMIT whose connection broke after it was written: the server may have committed. Not a failure
    // the caller may retry blindly (that would write twice), but an unknown outcome.
    if (sql === "COMMIT" && error.reason._tag === "ConnectionError") {
      const unknown = new UnknownOutcome({
        projectId: project.id,
        engine: "postgres",
        operation: "commit",
        cause: error
      })
      return Effect.fail(PgError.fromGuardError(unknown, "commit"))
    }
    return Effect.fail(error)
  })

/**
 * Checks and translations around each statement on a held connection (`beforeHeld`, `afterHeld`).
 *
 * @internal
 */
const aroundHeld = (ops: Ops<Binding>, held: Held): Around => {
  const project = held.lease!.project
  return {
    statement: (sql, params, run) =>
      afterHeld(ops, held, project, sql, Effect.andThen(beforeHeld(ops, held, project, sql, params), run)),
    stream: (sql, params, rows) => Stream.unwrap(Effect.as(beforeHeld(ops, held, project, sql, params), rows))
  }
}

/**
 * Reserves a connection under `held`'s lease, records it in `held`, and wraps it in the held checks.
 *
 * @internal
 */
const reserveHeld = (options: ClientOptions, held: Held): Effect.Effect<Connection, SqlError, Scope.Scope> =>
  Effect.map(reserveOn(options.sessions, held.lease!.binding, held.lease!.signal), (reserved) => {
    held.conn = reserved.conn
    held.slot = reserved.slot
    return makeConnection(reserved.conn, aroundHeld(options.ops, held))
  })

/**
 * A stream outside a transaction: a lease checked with the statement, a connection reserved under it, rows until
 * the consumer stops, the stream fails, or the lease's time is up.
 *
 * @internal
 */
const leasedStream = (
  options: ClientOptions,
  sql: string,
  params: ReadonlyArray<unknown>,
  transform: TransformRows
): Stream.Stream<any, SqlError> => {
  const bad = badStatement(sql, params)
  if (bad !== undefined) return Stream.fail(bad)
  return Stream.unwrap(
    Effect.gen(function* () {
      const held = newHeld()
      const lease = yield* takeLease(options, options.ops.stream, held, { statement: sql, params })
      const reserved = yield* reserveOn(options.sessions, lease.binding, lease.signal)
      held.conn = reserved.conn
      held.slot = reserved.slot
      const rows = makeConnection(reserved.conn).executeStream(sql, params, transform)
      return Stream.catch(Stream.interruptWhen(rows, Effect.mapError(lease.expired, refusal("stream"))), (error) =>
        held.expired ? Stream.fromEffect(verdict(held, "stream")) : Stream.fail(error)
      )
    })
  )
}

// ---- the client ---------------------------------------------------------------------------------------------------

/**
 * The connection every statement outside a transaction is handed: each call is one guarded operation.
 *
 * @internal
 */
const routingConnection = (options: ClientOptions): Connection => ({
  execute: (sql, params, transform) =>
    guardedStatement(options, sql, params, (c) => transformed(rows(c, sql, params, true), transform)),
  executeUnprepared: (sql, params, transform) =>
    guardedStatement(options, sql, params, (c) => transformed(rows(c, sql, params, false), transform)),
  executeRaw: (sql, params) => guardedStatement(options, sql, params, (c) => c.query(sql, params)),
  executeValues: (sql, params) => guardedStatement(options, sql, params, (c) => c.queryValues(sql, params)),
  executeValuesUnprepared: (sql, params) =>
    guardedStatement(options, sql, params, (c) => c.queryValues(sql, params, false)),
  executeStream: (sql, params, transform) => leasedStream(options, sql, params, transform)
})

/**
 * The transaction acquirer: a top-level transaction's connection is reserved under its lease; `sql.reserve` takes a
 * lease of its own.
 *
 * @internal
 */
const transactionAcquirer = (options: ClientOptions): Effect.Effect<Connection, SqlError, Scope.Scope> =>
  Effect.withFiber((fiber) => {
    const active = fiber.getRef(ActiveLease)
    if (active !== undefined && !active.taken) {
      active.taken = true
      return reserveHeld(options, active)
    }
    const held = newHeld()
    return Effect.andThen(takeLease(options, options.ops.reserve, held), () => reserveHeld(options, held))
  })

/**
 * The client's `withTransaction`: a top-level transaction holds a lease for its whole life, bounded by the tier
 * deadline: when it passes, the body is interrupted and the session ended on the server (rolled back). A nested one
 * is a savepoint (`client`'s own `withTransaction`).
 *
 * @internal
 */
const leasedWithTransaction = (options: ClientOptions, client: SqlClient.SqlClient) => {
  const inner = client.withTransaction
  return <R, E, A>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | SqlError, R> =>
    Effect.withFiber((fiber) => {
      if (Context.getOrUndefined(fiber.context, client.transactionService) !== undefined) return inner(effect)
      const held = newHeld()
      return Effect.scoped(
        Effect.flatMap(takeLease(options, options.ops.transaction, held), (lease) =>
          Effect.raceFirst(
            Effect.provideService(inner(effect), ActiveLease, held),
            Effect.mapError(lease.expired, refusal("transaction"))
          )
        )
      )
    })
}

/** Builds the guarded client. */
export const makeGuardedClient = Effect.fnUntraced(function* (options: ClientOptions) {
  const routing = routingConnection(options)
  const client = yield* SqlClient.make({
    acquirer: Effect.succeed(routing),
    borrower: (f) => f(routing),
    transactionAcquirer: transactionAcquirer(options),
    compiler: guardedCompiler(PgClient.makeCompiler(options.transformQueryNames, options.transformJson)),
    driver: "pg",
    spanAttributes: [
      ["db.system.name", "postgresql"],
      ["tenantpool.engine", "postgres"]
    ],
    prepareTransactionControls: true,
    commit,
    releaseSavepoint: (name) => `RELEASE SAVEPOINT ${name}`,
    transformRows: options.transformResultNames
      ? Statement.defaultTransforms(options.transformResultNames, options.transformJson).array
      : undefined
  })
  Object.assign(client, { withTransaction: leasedWithTransaction(options, client) })
  return client
})
