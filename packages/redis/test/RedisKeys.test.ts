/**
 * Key prefixing, the engine's isolation, on its own: keys and key arguments get the project's prefix, names coming
 * back lose it, and nothing else is touched.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Keys from "../src/internal/keys.ts"

const b = { prefix: "acme:" }

describe("Redis keys", () => {
  it("prefixes keys, and strips the prefix from names coming back", () => {
    assert.strictEqual(Keys.key(b, "user:1"), "acme:user:1")
    assert.deepStrictEqual(Keys.keys(b, ["a", "b"]), ["acme:a", "acme:b"])
    assert.strictEqual(Keys.strip(b, "acme:user:1"), "user:1")
    assert.strictEqual(Keys.strip(b, "other:user:1"), "other:user:1", "a name without the prefix is left as it is")
  })

  it("prefixes only the arguments at the key positions, numbers included", () => {
    assert.deepStrictEqual(Keys.prefixArgs(b, ["src", "dst", 5, "x"], [0, 1]), ["acme:src", "acme:dst", 5, "x"])
    assert.deepStrictEqual(Keys.prefixArgs(b, ["k", 42], [1]), ["k", "acme:42"])
    assert.deepStrictEqual(Keys.prefixArgs(b, ["v"], []), ["v"])
  })
})
