// Profiles the `projects` bench workload at one project count alone (Redis GET, auto-pipelining, 50 in flight, each
// call as the next project in turn):
//   REDIS_URL=… npx node --cpu-prof --cpu-prof-dir=/tmp/prof scratchpad/prof/projects.ts 1000 [seconds]
import { redisStack } from "../../packages/bench/src/workloads/redisGet.ts"
import { registerAndWarm, spread } from "../../packages/bench/src/workloads/projects.ts"

const url = process.env["REDIS_URL"] ?? "redis://127.0.0.1:6379"
const count = Number(process.argv[2] ?? 1000)
const seconds = Number(process.argv[3] ?? 5)
const ids = Array.from({ length: count }, (_, i) => `project-${i}`)
const stack = await redisStack(true)
await stack.run(registerAndWarm(ids, url))
const r = await stack.run(spread(ids, count, 50, seconds))
console.log(count, "projects", Math.round(r.opsPerSecond), "ops/s")
await stack.close()
process.exit(0)
