// Cost of the hot-path breaker: admit + record of a closed breaker, per call.
import * as BreakerPolicy from "../../packages/core/src/BreakerPolicy.ts"
import { Breaker } from "../../packages/core/src/internal/breaker.ts"
import { Effect } from "effect"

const policy = Effect.runSync(BreakerPolicy.make("redis"))
const breaker = new Breaker(policy, () => {})
const N = 10_000_000
let t = Date.now()
for (let r = 0; r < 3; r++) {
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < N; i++) {
    breaker.admit(t)
    breaker.record(t, false, false)
    if ((i & 1023) === 0) t++
  }
  console.log("breaker admit+record", (Number(process.hrtime.bigint() - t0) / N).toFixed(1), "ns/call")
}
