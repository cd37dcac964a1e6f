// The history checker on hand-made histories: each finding is counted exactly when its definition says, and the
// verdicts on errors come from the library's own error types.
import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Exit from "effect/Exit"
import { SqlError, UnknownError, ConnectionError } from "effect/sql/SqlError"
import { CircuitOpen, Timeout, UnknownOutcome } from "@tenantpool/core/Errors"
import { RedisError } from "@tenantpool/redis/RedisError"
import * as Checker from "../src/Checker.ts"
import type { Op } from "../src/History.ts"
import * as Outcome from "../src/Outcome.ts"

const op = (patch: Partial<Op> & Pick<Op, "ids" | "outcome">): Op => ({
  party: "a",
  kind: "write",
  invokedAt: 0,
  completedAt: 10,
  tag: patch.outcome === "ok" ? "ok" : "X",
  defect: false,
  unclassified: false,
  badRead: false,
  boundMs: 1_000,
  ...patch
})

describe("checkParty", () => {
  it("counts lost, falsely failed, unknown applied and not applied writes", () => {
    const figures = Checker.checkParty(
      [
        op({ ids: ["1"], outcome: "ok" }),
        op({ ids: ["2"], outcome: "ok" }), // lost
        op({ ids: ["3"], outcome: "fail", tag: "SqlError:ConnectionError" }), // falsely failed
        op({ ids: ["4"], outcome: "fail" }),
        op({ ids: ["5"], outcome: "unknown" }), // applied
        op({ ids: ["6"], outcome: "unknown" })
      ],
      ["1", "3", "5"]
    )
    assert.deepStrictEqual(figures.writes, { ok: 2, fail: 2, unknown: 2 })
    assert.strictEqual(figures.lost, 1)
    assert.strictEqual(figures.falseFail, 1)
    assert.deepStrictEqual(figures.examples["falseFail"], ["3 (SqlError:ConnectionError)"])
    assert.strictEqual(figures.unknownApplied, 1)
    assert.strictEqual(figures.unknownNotApplied, 1)
    assert.strictEqual(figures.duplicates + figures.unexpected + figures.torn, 0)
  })

  it("counts duplicates, unexpected ids and torn transactions", () => {
    const figures = Checker.checkParty(
      [op({ ids: ["1"], outcome: "unknown" }), op({ kind: "tx", ids: ["t:1", "t:2"], outcome: "unknown" })],
      ["1", "1", "t:2", "stray"]
    )
    assert.strictEqual(figures.duplicates, 1)
    assert.strictEqual(figures.unexpected, 1)
    assert.strictEqual(figures.torn, 1)
  })

  it("holds every operation to its deadline plus 10 %", () => {
    const figures = Checker.checkParty(
      [
        op({ ids: ["1"], outcome: "fail", completedAt: 1_100 }),
        op({ ids: ["2"], outcome: "fail", completedAt: 1_101 }),
        op({ kind: "read", ids: ["k"], outcome: "ok", completedAt: 5, badRead: true })
      ],
      []
    )
    assert.strictEqual(figures.waitsOverBound, 1)
    assert.strictEqual(figures.maxOpMs, 1_101)
    assert.strictEqual(figures.badReads, 1)
    assert.deepStrictEqual(figures.reads, { ok: 1, fail: 0, unknown: 0 })
  })
})

describe("check", () => {
  it("measures detection from the fault and recovery from the heal, for operations started after it", () => {
    const ops = [
      op({ ids: ["1"], outcome: "ok", invokedAt: 0, completedAt: 5 }),
      op({ ids: ["2"], outcome: "fail", invokedAt: 90, completedAt: 130 }),
      // Started before the heal: not a recovery.
      op({ ids: ["3"], outcome: "ok", invokedAt: 150, completedAt: 210 }),
      op({ ids: ["4"], outcome: "ok", invokedAt: 220, completedAt: 260 }),
      op({ party: "b", ids: ["b1"], outcome: "fail", invokedAt: 100, completedAt: 120 })
    ]
    const marks = [
      { at: 100, what: "fault" as const, detail: "" },
      { at: 200, what: "heal" as const, detail: "" }
    ]
    const figures = Checker.check({ ops, marks }, { a: ["1", "3", "4"], b: [] })
    assert.strictEqual(figures.detectMs, 30)
    assert.strictEqual(figures.recoverMs, 60)
    assert.strictEqual(Checker.disturbed(figures.a), 1)
    assert.strictEqual(Checker.disturbed(figures.b), 1)
  })
})

describe("Outcome", () => {
  const unknown = new UnknownOutcome({ projectId: "p", engine: "postgres", operation: "insert", cause: new Error("x") })

  it("UnknownOutcome is unknown, other guard errors and engine errors are definite failures", () => {
    assert.strictEqual(Outcome.ofError(unknown).outcome, "unknown")
    const open = new CircuitOpen({
      projectId: "p",
      engine: "redis",
      scope: "project",
      untilMillis: 0,
      retryAfterMillis: 0
    })
    assert.deepInclude(Outcome.ofError(open), { outcome: "fail", tag: "CircuitOpen" })
    const timeout = new Timeout({
      projectId: "p",
      engine: "redis",
      operation: "get",
      budget: "attempt",
      afterMillis: 1
    })
    assert.strictEqual(Outcome.ofError(timeout).outcome, "fail")
    const redis = new RedisError({ kind: "connection", command: "rpush", detail: "closed", sent: false })
    assert.deepInclude(Outcome.ofError(redis), { outcome: "fail", tag: "RedisError:connection" })
  })

  it("looks inside SqlError for the guard's verdict", () => {
    const wrapped = new SqlError({ reason: new UnknownError({ cause: unknown, message: "m", operation: "insert" }) })
    assert.deepInclude(Outcome.ofError(wrapped), { outcome: "unknown", tag: "UnknownOutcome" })
    const server = new SqlError({ reason: new ConnectionError({ cause: new Error("EPIPE"), message: "m" }) })
    assert.deepInclude(Outcome.ofError(server), { outcome: "fail", tag: "SqlError:ConnectionError" })
  })

  it("a defect is an unknown outcome counted as a defect; a foreign error is unclassified", () => {
    assert.deepInclude(Outcome.ofExit(Exit.failCause(Cause.die(new Error("boom")))), {
      outcome: "unknown",
      defect: true
    })
    assert.deepInclude(Outcome.ofError(new Error("what")), { outcome: "unknown", unclassified: true })
    assert.deepInclude(Outcome.ofExit(Exit.void), { outcome: "ok" })
  })
})
