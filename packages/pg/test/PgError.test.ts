/**
 * Classification by SQLSTATE: the server's and the network's failures count toward breakers, the caller's never;
 * whether a failed statement may have taken effect; and guard refusals carried inside `SqlError`.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import {
  ConnectionError,
  SqlError,
  SqlSyntaxError,
  StatementTimeoutError,
  UniqueViolation,
  UnknownError
} from "effect/sql/SqlError"
import { CircuitOpen, Overloaded, Timeout, UnknownOutcome } from "@tenantpool/core/Errors"
import * as PgError from "../src/PgError.ts"

/** A SqlError as sql-pg makes it for a server ErrorResponse with this SQLSTATE. */
const server = (code: string, make: (props: any) => SqlError["reason"] = (p) => new UnknownError(p)) =>
  new SqlError({
    reason: make({
      cause: Object.assign(new Error(`server said ${code}`), { code, severity: "ERROR", severityUnlocalized: "ERROR" }),
      message: "PgConnection: Query failed",
      operation: "query"
    })
  })

const client = (reason: SqlError["reason"]) => new SqlError({ reason })

describe("PgError", () => {
  it("server and network failures count; the caller's never do", () => {
    const cases: ReadonlyArray<readonly [string, PgError.ErrorType, boolean]> = [
      ["08006", "connection", true],
      ["28P01", "auth", true],
      ["53300", "too_many_connections", true],
      ["53200", "resources", true],
      ["57P01", "shutdown", true],
      ["57P02", "shutdown", true],
      ["57P03", "shutdown", true],
      ["57014", "canceled", true],
      ["58030", "system", true],
      ["XX000", "system", true],
      ["42601", "syntax", false],
      ["42P01", "syntax", false],
      ["42501", "permission", false],
      ["23505", "unique_violation", false],
      ["23503", "constraint", false],
      ["22012", "data", false],
      ["22P02", "data", false],
      ["40P01", "deadlock", false],
      ["40001", "serialization", false],
      ["55P03", "lock_timeout", false],
      ["25P02", "transaction_state", false],
      ["P0001", "other", false]
    ]
    for (const [code, type, infrastructure] of cases) {
      const c = PgError.classify(server(code))
      assert.strictEqual(c.errorType, type, code)
      assert.strictEqual(c.infrastructure, infrastructure, code)
      assert.isFalse(c.sent, `${code}: the server answered, so the statement did not take effect`)
    }
  })

  it("a broken connection may have carried the statement; a failed connect did not", () => {
    const broken = client(
      new ConnectionError({ cause: new Error("socket hang up"), message: "Socket error", operation: "query" })
    )
    assert.deepStrictEqual(PgError.classify(broken), {
      infrastructure: true,
      shared: true,
      errorType: "connection",
      sent: true
    })
    const refused = client(
      new ConnectionError({
        cause: Object.assign(new Error("refused"), { code: "ECONNREFUSED" }),
        message: "x",
        operation: "connect"
      })
    )
    assert.deepStrictEqual(PgError.classify(refused), {
      infrastructure: true,
      shared: true,
      errorType: "connection",
      sent: false
    })
    assert.isUndefined(PgError.sqlState(refused), "a Node error code is not a SQLSTATE")
  })

  it("a socket error code shaped like a SQLSTATE (EPIPE) is a broken connection, never a server answer", () => {
    for (const code of ["EPIPE", "ECONNRESET", "ETIMEDOUT"]) {
      const socket = client(
        new UnknownError({
          cause: Object.assign(new Error(`write ${code}`), { code, errno: -32, syscall: "write" }),
          message: "PgConnection: Failed to write query batch",
          operation: "query"
        })
      )
      assert.isUndefined(PgError.sqlState(socket), code)
      const asConnection = client(
        new ConnectionError({
          cause: Object.assign(new Error(`write ${code}`), { code, errno: -32, syscall: "write" }),
          message: "PgConnection: socket error",
          operation: "query"
        })
      )
      assert.isUndefined(PgError.sqlState(asConnection), code)
      assert.deepStrictEqual(PgError.classify(asConnection), {
        infrastructure: true,
        shared: true,
        errorType: "connection",
        sent: true
      })
    }
  })

  it("an error one statement provokes (08P01 protocol violation, 57014 statement timeout) is not the target's", () => {
    for (const code of ["08P01", "57014"]) {
      const c = PgError.classify(server(code))
      assert.isTrue(c.infrastructure, `${code} counts toward the project's breaker`)
      assert.isFalse(c.shared, `${code} never counts toward the target's breaker`)
    }
    assert.isTrue(PgError.classify(server("08006")).shared, "a connection failure of the server's is")
    assert.isTrue(PgError.classify(server("57P01")).shared)
  })

  it("reasons without a SQLSTATE fall back to the reason, and non-SQL failures are the application's", () => {
    assert.strictEqual(PgError.classify(client(new SqlSyntaxError({ cause: new Error("x") }))).errorType, "syntax")
    assert.strictEqual(
      PgError.classify(client(new UniqueViolation({ cause: new Error("x"), constraint: "pk" }))).errorType,
      "unique_violation"
    )
    const encode = PgError.classify(client(new UnknownError({ cause: new Error("cannot encode"), operation: "query" })))
    assert.deepStrictEqual(encode, { infrastructure: false, shared: false, errorType: "client", sent: false })
    assert.deepStrictEqual(PgError.classify("a domain error"), {
      infrastructure: false,
      errorType: "application",
      sent: false
    })
  })

  it("guard refusals travel inside SqlError, never count again, and can be surfaced typed", () =>
    Effect.gen(function* () {
      const open = new CircuitOpen({
        projectId: "p",
        engine: "postgres",
        scope: "project",
        untilMillis: 0,
        retryAfterMillis: 1000
      })
      const wrapped = PgError.fromGuardError(open, "select")
      assert.strictEqual(wrapped.reason._tag, "ConnectionError")
      assert.isTrue(wrapped.isRetryable)
      assert.include(wrapped.message, "circuit open")
      assert.strictEqual(PgError.guardError(wrapped), open)
      assert.isFalse(PgError.classify(wrapped).infrastructure)

      const timeout = new Timeout({
        projectId: "p",
        engine: "postgres",
        operation: "select",
        budget: "attempt",
        afterMillis: 5
      })
      assert.instanceOf(PgError.fromGuardError(timeout, "select").reason, StatementTimeoutError)
      const unknown = new UnknownOutcome({ projectId: "p", engine: "postgres", operation: "insert", cause: timeout })
      assert.isFalse(PgError.fromGuardError(unknown, "insert").isRetryable)
      const overloaded = new Overloaded({
        projectId: "p",
        engine: "postgres",
        scope: "project",
        reason: "queue-full",
        retryAfterMillis: 5
      })
      assert.strictEqual((PgError.toSqlError(overloaded, "select") as SqlError).reason._tag, "ConnectionError")
      assert.strictEqual(PgError.toSqlError("mine", "select"), "mine")

      const typed = yield* Effect.flip(PgError.unwrapGuardErrors(Effect.fail(wrapped)))
      assert.strictEqual(typed, open)
      const plain = server("42601", (p) => new SqlSyntaxError(p))
      assert.strictEqual(yield* Effect.flip(PgError.unwrapGuardErrors(Effect.fail(plain))), plain)
    }).pipe(Effect.runSync))
})
