import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type { InvalidProjectId } from "../src/Errors.ts"
import * as ProjectId from "../src/ProjectId.ts"

const reject = (input: unknown) => Effect.flip(ProjectId.decode(input))

const charsetReason = "may contain only a-z, 0-9, '-' and '_'"

describe("ProjectId", () => {
  it.effect("accepts lower-case letters, digits, '-' and '_' up to 63 characters", () =>
    Effect.gen(function* () {
      for (const id of ["a", "acme", "acme-prod", "proj_42", "0abc9", "a".repeat(63)]) {
        assert.strictEqual(yield* ProjectId.decode(id), id)
        assert.isTrue(ProjectId.is(id))
        assert.strictEqual(ProjectId.make(id), id)
        assert.strictEqual(yield* Schema.decodeUnknownEffect(ProjectId.ProjectId)(id), id)
      }
    })
  )

  it.effect("rejects an empty id", () =>
    Effect.gen(function* () {
      const error = yield* reject("")
      assert.strictEqual(error._tag, "InvalidProjectId")
      assert.strictEqual(error.reason, "project id must not be empty")
      assert.strictEqual(error.message, 'invalid project id "": project id must not be empty')
    })
  )

  it.effect("rejects an id of 64 characters, saying the limit and not echoing it", () =>
    Effect.gen(function* () {
      const long = "a".repeat(64)
      const error = yield* reject(long)
      assert.include(error.message, "at most 63 characters (got 64)")
      assert.notInclude(error.message, long)
      assert.notInclude(JSON.stringify(error), long)
      assert.strictEqual(error.input, "<not shown>")
      const huge = yield* reject("x".repeat(100_000))
      assert.isBelow(huge.message.length, 200, "a hostile id cannot flood a log line")
    })
  )

  it.effect("rejects bad characters and says which are allowed", () =>
    Effect.gen(function* () {
      for (const id of ["a b", "a.b", "a/b", "a:b", 'a"b', "a\\b", "a}b", "-abc", "abc-", "_abc", "abc_", "a@b"]) {
        const error = yield* reject(id)
        assert.include(error.message, charsetReason, id)
        assert.isFalse(ProjectId.is(id))
      }
    })
  )

  it.effect("rejects upper case", () =>
    Effect.gen(function* () {
      const error = yield* reject("Acme")
      assert.include(error.message, charsetReason)
      assert.strictEqual(error.input, "Acme", "a short printable id is echoed to help the caller")
    })
  )

  it.effect("rejects unicode, NUL, newlines and control characters without echoing them", () =>
    Effect.gen(function* () {
      for (const id of ["café", "аcme" /* Cyrillic а */, "a\u0000b", "acme\nforged 1", "a\tb", "a\u202eb", "🙂"]) {
        const error: InvalidProjectId = yield* reject(id)
        assert.include(error.message, charsetReason)
        assert.strictEqual(error.input, "<not shown>")
        assert.notInclude(error.message, id)
        assert.notMatch(error.message, /[^\x20-\x7e]/, "the message is printable ASCII only")
      }
    })
  )

  it.effect("rejects non-strings with a clear reason", () =>
    Effect.gen(function* () {
      assert.include((yield* reject(42)).message, "expected a string, got number")
      assert.include((yield* reject(null)).message, "expected a string, got null")
      assert.include((yield* reject(undefined)).message, "expected a string, got undefined")
    })
  )

  it("make throws InvalidProjectId", () => {
    assert.throws(() => ProjectId.make("Bad Id"), /invalid project id "Bad Id"/)
  })

  it.effect("the schema agrees with decode", () =>
    Effect.gen(function* () {
      const decode = Schema.decodeUnknownEffect(ProjectId.ProjectId)
      for (const bad of ["", "a".repeat(64), "A", "a b", "-a"]) {
        const error = yield* Effect.flip(decode(bad))
        assert.isString(error.message)
      }
    })
  )
})
