import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as PubSub from "effect/PubSub"
import type { TenancyEvent } from "../../src/Events.ts"
import { Emitter } from "../../src/internal/events.ts"

const tier = (n: number): TenancyEvent => ({ _tag: "TierChanged", at: n, tier: "FREE" })

describe("events", () => {
  it.effect("keeps the most recent events, oldest first, and publishes every one", () =>
    Effect.gen(function* () {
      const pubsub = yield* PubSub.unbounded<TenancyEvent>()
      const subscription = yield* PubSub.subscribe(pubsub)
      const emitter = new Emitter(pubsub, 3)
      assert.deepStrictEqual(emitter.recent(), [])
      for (let i = 1; i <= 5; i++) emitter.emit(tier(i))
      assert.deepStrictEqual(
        emitter.recent().map((e) => e.at),
        [3, 4, 5]
      )
      assert.strictEqual((yield* PubSub.takeAll(subscription)).length, 5)
      const none = new Emitter(pubsub, 0)
      none.emit(tier(6))
      assert.deepStrictEqual(none.recent(), [])
    }).pipe(Effect.scoped)
  )
})
