/**
 * `npm run chaos`: the fault scenarios of RELIABILITY.md against private servers of all three engines, a progress
 * line per scenario, a table at the end, and with `--json FILE` one JSON line per scenario × engine. Exits 1 when a
 * property is broken (the table says which).
 *
 * ```
 * npm run chaos                                  # every scenario, every engine
 * npm run chaos -- --engine redis --scenario R6,R7 --window 5000
 * npm run chaos -- --ci --json chaos.jsonl       # the CI subset
 * npm run chaos -- --scenario fleet              # issue #17's fleet of three processes alone
 * ```
 *
 * The fleet scenario (`../Fleet.ts`: three processes in fleet mode sharing one PostgreSQL's budget through Redis)
 * runs after the engines' scenarios when PostgreSQL is among the engines, or alone with `--scenario fleet`; not
 * with `--ci` (CI runs it as `packages/cluster/test/Fleet.integration.test.ts`).
 *
 * @since 0.1.0
 */
import * as fs from "node:fs"
import * as os from "node:os"
import { parseArgs } from "node:util"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Toxiproxy from "@tenantpool/testing/Toxiproxy"
import * as Fleet from "../Fleet.ts"
import * as Report from "../Report.ts"
import { engines, type EngineName } from "../Rig.ts"
import * as Runner from "../Runner.ts"
import * as Scenarios from "../Scenarios.ts"

const { values } = parseArgs({
  options: {
    engine: { type: "string" },
    scenario: { type: "string" },
    ci: { type: "boolean", default: false },
    window: { type: "string", default: "3000" },
    json: { type: "string" },
    help: { type: "boolean", short: "h", default: false }
  }
})

if (values.help) {
  console.log(
    [
      "npm run chaos -- [--engine postgres,redis,mongodb] [--scenario R6,R7] [--ci] [--window MS] [--json FILE]",
      "",
      "Scenarios:",
      ...Scenarios.scenarios.map((s) => `  ${s.id.padEnd(5)} ${s.title} — ${s.fault(3_000)} (${s.engines.join(", ")})`),
      "  fleet three processes in fleet mode share one PostgreSQL's budget; SIGKILL, database stop, Redis stop"
    ].join("\n")
  )
  process.exit(0)
}

const alias: Record<string, EngineName> = {
  pg: "postgres",
  postgres: "postgres",
  redis: "redis",
  mongo: "mongodb",
  mongodb: "mongodb"
}
const chosenEngines =
  values.engine === undefined
    ? engines
    : values.engine.split(",").map((name) => {
        const engine = alias[name.trim().toLowerCase()]
        if (engine === undefined) throw new Error(`unknown engine ${name} (postgres, redis, mongodb)`)
        return engine
      })
const chosenIds = values.scenario?.split(",").map((id) => id.trim().toLowerCase())
for (const id of chosenIds ?? []) {
  if (id !== "fleet" && Scenarios.byId(id) === undefined) throw new Error(`unknown scenario ${id}; --help lists them`)
}
const windowMs = Number(values.window)
if (!Number.isFinite(windowMs) || windowMs <= 0) throw new Error(`--window must be a positive number of ms`)

const libraryEnv = Report.libraryEnv()
const machine = `${os.cpus().length} × ${os.cpus()[0]?.model ?? "cpu"}, ${Math.round(os.totalmem() / 2 ** 30)} GB, ${os.type()} ${os.release()}`
const jsonFile = values.json
if (jsonFile !== undefined) fs.writeFileSync(jsonFile, "")

const program = Effect.gen(function* () {
  const toxiproxy = yield* Toxiproxy.Toxiproxy
  console.log(`[chaos] ${machine}; node ${libraryEnv["node"]}, toxiproxy ${toxiproxy.version}; window ${windowMs} ms`)
  const results: Array<Runner.Result> = []
  const failedRuns: Array<string> = []
  for (const engine of chosenEngines) {
    const list = Scenarios.forEngine(engine, { ci: values.ci }).filter(
      (s) => chosenIds === undefined || chosenIds.includes(s.id.toLowerCase())
    )
    if (list.length === 0) continue
    yield* Effect.scoped(
      Effect.gen(function* () {
        const rig = yield* Runner.acquireRig(engine)
        console.log(
          `[chaos] ${engine}: ${rig.server.version} on ${rig.server.host}:${rig.server.port}, proxy :${rig.proxy.port}`
        )
        for (const scenario of list) {
          // A line that the result overwrites on a terminal; elsewhere (CI logs) only the result.
          if (process.stdout.isTTY)
            process.stdout.write(`[chaos] ${scenario.id.padEnd(4)} ${engine.padEnd(8)} ${scenario.title} …`)
          const outcome = yield* Effect.result(Runner.run(rig, scenario, { windowMs }))
          if (process.stdout.isTTY) process.stdout.write("\r\x1b[2K")
          if (outcome._tag === "Failure") {
            const message = Report.redact(String(outcome.failure), rig.secret)
            console.log(
              `[chaos] ${scenario.id.padEnd(4)} ${engine.padEnd(8)} ${scenario.title}: the run failed: ${message}`
            )
            failedRuns.push(`  ${scenario.id} ${engine}: the run failed: ${message}`)
            continue
          }
          const result = outcome.success
          console.log(`[chaos] ${Report.progressLine(result)}`)
          results.push(result)
          if (jsonFile !== undefined) {
            const env = { ...libraryEnv, server: rig.server.version, toxiproxy: toxiproxy.version, machine }
            fs.appendFileSync(jsonFile, `${Report.jsonLine(result, env)}\n`)
          }
        }
      })
    )
  }
  const fleetBroken: Array<string> = []
  const runFleet =
    chosenIds === undefined ? !values.ci && chosenEngines.includes("postgres") : chosenIds.includes("fleet")
  if (runFleet) {
    console.log(`[chaos] fleet: three processes, one PostgreSQL budget, Redis as coordinator`)
    const outcome = yield* Effect.exit(
      Effect.scoped(Fleet.run({ log: (line) => console.log(`[chaos] fleet ${line}`) }))
    )
    if (outcome._tag === "Failure") failedRuns.push(`  fleet: the run failed: ${Cause.pretty(outcome.cause)}`)
    else {
      for (const check of Fleet.checks(outcome.value)) {
        console.log(`[chaos] fleet ${check.ok ? "ok    " : "BROKEN"} ${check.name.padEnd(18)} ${check.detail}`)
        if (!check.ok) fleetBroken.push(`  fleet: ${check.name} — ${check.detail}`)
      }
      if (jsonFile !== undefined) {
        fs.appendFileSync(jsonFile, `${JSON.stringify({ scenario: "fleet", figures: outcome.value, machine })}\n`)
      }
    }
  }
  if (results.length > 0) console.log(`\n${Report.table(results)}\n`)
  const broken = results
    .flatMap((result) =>
      Report.violations(result).map((check) => `  ${result.scenario} ${result.engine}: ${check.name} — ${check.detail}`)
    )
    .concat(fleetBroken)
  if (broken.length > 0) console.log(`Broken properties:\n${broken.join("\n")}`)
  if (failedRuns.length > 0) console.log(`Runs that failed:\n${failedRuns.join("\n")}`)
  if (jsonFile !== undefined) console.log(`[chaos] wrote ${results.length} JSON lines to ${jsonFile}`)
  return broken.length + failedRuns.length
})

Effect.runPromise(program.pipe(Effect.provide(Toxiproxy.layer))).then(
  (broken) => process.exit(broken > 0 ? 1 : 0),
  (error) => {
    console.error("[chaos] failed:", error)
    process.exit(2)
  }
)
