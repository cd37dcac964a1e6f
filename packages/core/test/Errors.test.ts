import { assert, describe, it } from "@effect/vitest"
import * as Data from "effect/Data"
import {
  CircuitOpen,
  EngineNotConfigured,
  InvalidConfig,
  InvalidProjectId,
  isGuardError,
  isUnavailable,
  NoCurrentProject,
  Overloaded,
  ProjectNotFound,
  QueryRejected,
  RateLimited,
  retryAfterMillis,
  ShuttingDown,
  Timeout,
  UnknownOutcome
} from "../src/Errors.ts"

const verdicts = [
  new ProjectNotFound({ projectId: "p" }),
  new EngineNotConfigured({ projectId: "p", engine: "redis" }),
  new NoCurrentProject({ engine: "redis" }),
  new Overloaded({ projectId: "p", engine: "redis", scope: "project", reason: "deadline", retryAfterMillis: 12 }),
  new CircuitOpen({ projectId: "p", engine: "redis", scope: "target", untilMillis: 1, retryAfterMillis: 34 }),
  new Timeout({ projectId: "p", engine: "redis", operation: "get", budget: "attempt", afterMillis: 1000 }),
  new UnknownOutcome({ projectId: "p", engine: "redis", operation: "set", cause: new Error("reset") }),
  new ShuttingDown({ engine: "redis" }),
  new RateLimited({ projectId: "p", engine: "redis", tier: "FREE", limit: 10, retryAfterMillis: 56 }),
  new QueryRejected({ projectId: "p", engine: "redis", tier: "FREE", rule: "redis-command", detail: "KEYS" })
]

class DriverError extends Data.TaggedError("Timeout")<{ readonly message: string }> {}

describe("Errors", () => {
  it("isGuardError knows every guard verdict and nothing else", () => {
    for (const e of verdicts) assert.isTrue(isGuardError(e), e._tag)
    for (const other of [
      new InvalidConfig({ field: "f", reason: "r" }),
      new InvalidProjectId({ input: "x", reason: "r" }),
      new Error("Timeout"),
      { _tag: "toString" },
      { _tag: "__proto__" },
      "Timeout",
      null,
      undefined,
      42
    ]) {
      assert.isFalse(isGuardError(other), String((other as { _tag?: string } | null)?._tag ?? other))
    }
    // The predicate goes by tag: an error of another library with the same tag is indistinguishable, which is why
    // engines classify their driver's errors before they reach it (their tags end in `Error`).
    assert.isTrue(isGuardError(new DriverError({ message: "x" })))
  })

  it("isUnavailable tells 'not now' from 'asked wrongly'", () => {
    const unavailable = verdicts.filter(isUnavailable).map((e) => e._tag)
    assert.deepStrictEqual(unavailable, [
      "Overloaded",
      "CircuitOpen",
      "Timeout",
      "UnknownOutcome",
      "ShuttingDown",
      "RateLimited"
    ])
  })

  it("retryAfterMillis is given by the refusals that know when to come back", () => {
    assert.deepStrictEqual(
      verdicts.map((e) => retryAfterMillis(e)),
      [undefined, undefined, undefined, 12, 34, undefined, undefined, undefined, 56, undefined]
    )
  })
})
