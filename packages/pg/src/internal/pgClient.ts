/**
 * The guarded `SqlClient`: `effect/sql`'s own client built with acquirers of ours, so every statement outside a
 * transaction is one guarded operation on a *routing* connection, a top-level transaction is one guarded operation
 * holding a reserved connection, and a nested one is a savepoint on it (see the `PgEngine` module comment).
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
import { SqlError, UnknownError } from "effect/sql/SqlError"
import * as Statement from "effect/sql/Statement"
import * as Stream from "effect/Stream"
import type * as EngineContract from "@tenantpool/core/Engine"
import type { ProtectionDetail } from "@tenantpool/core/Protections"
import * as PgError from "../PgError.ts"
import { type Ops, opFor } from "./pgOperations.ts"
import { type Binding, reserveOn, runOn, type Sessions } from "./pgSessions.ts"

/** What the client is built from: the guard, the operations, the statement runners and the name transforms. */
export interface ClientOptions {
  readonly handle: EngineContract.EngineHandle<Binding, SqlError>
  readonly ops: Ops<Binding>
  readonly sessions: Sessions
  readonly transformResultNames?: ((name: string) => string) | undefined
  readonly transformQueryNames?: ((name: string) => string) | undefined
  readonly transformJson?: boolean | undefined
}

/** The binding a transaction's attempt resolved; its connection is reserved from this binding's pool. */
const ActiveBinding = Context.Reference<Binding | undefined>("@tenantpool/pg/PgEngine/ActiveBinding", {
  defaultValue: () => undefined
})

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

/** Builds the guarded client. */
export const makeGuardedClient = Effect.fnUntraced(function* (options: ClientOptions) {
  const { handle, ops, sessions } = options

  // `detail` (the statement and its parameters) goes to the installed protections: rate limits, the SQL analyzer,
  // the cost estimator (`@tenantpool/protections`); with none installed it costs one reference read.
  const guarded = <A, R>(
    op: EngineContract.Operation<Binding>,
    f: (b: Binding) => Effect.Effect<A, SqlError, R>,
    detail?: ProtectionDetail
  ): Effect.Effect<A, SqlError, R> =>
    Effect.mapError(
      detail === undefined ? handle.runEffect(op, f) : handle.runEffect(op, f, undefined, detail),
      (error) => PgError.toSqlError(error, op.name) as SqlError
    )

  const statement = <A>(
    sql: string,
    params: ReadonlyArray<unknown>,
    exec: (conn: PgConnection.PgConnection) => Effect.Effect<A, SqlError>
  ) => guarded(opFor(ops, sql), (b) => runOn(sessions, b, exec), { statement: sql, params })

  const reserve = (b: Binding) => reserveOn(sessions, b)

  // The connection every statement outside a transaction is handed: each call is one guarded operation.
  const routing: Connection = {
    execute: (sql, params, transform) =>
      statement(sql, params, (c) => transformed(rows(c, sql, params, true), transform)),
    executeUnprepared: (sql, params, transform) =>
      statement(sql, params, (c) => transformed(rows(c, sql, params, false), transform)),
    executeRaw: (sql, params) => statement(sql, params, (c) => c.query(sql, params)),
    executeValues: (sql, params) => statement(sql, params, (c) => c.queryValues(sql, params)),
    executeValuesUnprepared: (sql, params) => statement(sql, params, (c) => c.queryValues(sql, params, false)),
    executeStream: (sql, params, transform) =>
      Stream.unwrap(Effect.map(guarded(ops.stream, reserve), (conn) => conn.executeStream(sql, params, transform)))
  }

  const transactionAcquirer: Effect.Effect<Connection, SqlError, Scope.Scope> = Effect.withFiber((fiber) => {
    const b = fiber.getRef(ActiveBinding)
    return b !== undefined ? reserve(b) : guarded(ops.reserve, reserve)
  })

  const client = yield* SqlClient.make({
    acquirer: Effect.succeed(routing),
    borrower: (f) => f(routing),
    transactionAcquirer,
    compiler: PgClient.makeCompiler(options.transformQueryNames, options.transformJson),
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

  // A top-level transaction is one guarded operation; a nested one is a savepoint on the same connection.
  const inner = client.withTransaction
  const withTransaction = <R, E, A>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | SqlError, R> =>
    Effect.withFiber((fiber) => {
      if (Context.getOrUndefined(fiber.context, client.transactionService) !== undefined) return inner(effect)
      return Effect.mapError(
        handle.runEffect(
          ops.transaction,
          (b) => Effect.provideService(inner(effect), ActiveBinding, b) as unknown as Effect.Effect<A, SqlError, R>
        ),
        (error) => PgError.toSqlError(error, "transaction")
      ) as Effect.Effect<A, E | SqlError, R>
    })
  Object.assign(client, { withTransaction })
  return client
})
