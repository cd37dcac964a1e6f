/**
 * The spec's tiers (best practice 4, "Use Appropriate Tiers"): the default table, an override at start-up, and a
 * change at runtime without a restart.
 *
 *   npx node scratchpad/tiers.ts
 */
import * as Effect from "effect/Effect"
import * as Tier from "@tenantpool/core/Tier"

const program = Effect.gen(function* () {
  const tiers = yield* Tier.Tiers
  console.table(tiers.all())
  // Grow FREE at runtime: every FREE project gets the new limit on its next operation.
  const free = yield* tiers.update("FREE", { maxConcurrent: 30, timeout: "15 seconds" })
  console.log("FREE now:", free.maxConcurrent, "concurrent,", free.timeoutMillis, "ms")
  // Bad input changes nothing and says why.
  const error = yield* Effect.flip(tiers.update("PRO", { minPool: 80, maxPool: 50 }))
  console.log("rejected:", error.message)
}).pipe(Effect.provide(Tier.layer({ ENTERPRISE: { maxConcurrent: 1000 } })))

await Effect.runPromise(program)
