/**
 * `npm start`: the demo. Starts (or finds) PostgreSQL, Redis and a MongoDB-wire server, applies the platform
 * migrations, registers demo projects on all four tiers, starts the API and prints its URLs.
 *
 *   npm start                     # API on 127.0.0.1:3000 (or the next free port)
 *   npm start -- --port 8080
 *   npm start -- --load           # also drive traffic, with a progress line
 *   npm start -- --exit-after 20  # stop by itself after 20 s (used by the test of this command)
 *
 * Servers come from TENANTPOOL_PG_URL / TENANTPOOL_REDIS_URL / TENANTPOOL_MONGODB_URL when set, otherwise from
 * `npm run services:start` (local binaries; see CONTRIBUTING.md).
 *
 * @since 0.1.0
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Redacted from "effect/Redacted"
import { PgClient } from "@effect/sql-pg"
import * as Registry from "@tenantpool/core/Registry"
import * as PgMigrations from "@tenantpool/pg/PgMigrations"
import * as App from "../App.ts"
import { demoProjects, prepareDatabases } from "../Demo.ts"
import { loggerAbove, progressLine, runLoad } from "../Load.ts"

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../..")
const argv = process.argv.slice(2)
const flag = (name: string) => argv.includes(`--${name}`)
const option = (name: string): string | undefined => {
  const i = argv.indexOf(`--${name}`)
  return i >= 0 ? argv[i + 1] : undefined
}

interface Urls {
  readonly postgres: string
  readonly redis: string
  readonly mongodb: string
}

// Servers from the environment, or from `npm run services:start`.
const resolveServers = (): Urls => {
  const env = process.env
  const fromEnv = {
    postgres: env["TENANTPOOL_PG_URL"] ?? env["DATABASE_URL"],
    redis: env["TENANTPOOL_REDIS_URL"] ?? env["REDIS_URL"],
    mongodb: env["TENANTPOOL_MONGODB_URL"] ?? env["MONGODB_URL"]
  }
  if (fromEnv.postgres !== undefined && fromEnv.redis !== undefined && fromEnv.mongodb !== undefined) {
    return fromEnv as Urls
  }
  execFileSync(process.execPath, [path.join(repoRoot, "packages/testing/src/bin/services.ts"), "start"], {
    stdio: ["ignore", "inherit", "inherit"]
  })
  const json = JSON.parse(fs.readFileSync(path.join(repoRoot, ".tenantpool/services.json"), "utf8")) as {
    readonly servers: ReadonlyArray<{ readonly kind: keyof Urls; readonly url: string }>
  }
  const byKind = Object.fromEntries(json.servers.map((s) => [s.kind, s.url])) as Partial<Urls>
  return {
    postgres: fromEnv.postgres ?? byKind.postgres!,
    redis: fromEnv.redis ?? byKind.redis!,
    mongodb: fromEnv.mongodb ?? byKind.mongodb!
  }
}

const freePort = (preferred: number): Promise<number> =>
  new Promise((resolve) => {
    const server = net.createServer()
    server.once("error", () => {
      const any = net.createServer()
      any.listen(0, "127.0.0.1", () => {
        const port = (any.address() as net.AddressInfo).port
        any.close(() => resolve(port))
      })
    })
    server.listen(preferred, "127.0.0.1", () => server.close(() => resolve(preferred)))
  })

const main = Effect.gen(function* () {
  const urls = yield* Effect.sync(resolveServers)
  const port = yield* Effect.promise(() => freePort(Number(option("port") ?? 3000)))

  // The platform schema, applied to the platform database.
  const applied = yield* PgMigrations.run({ directory: path.join(repoRoot, "migrations") }).pipe(
    Effect.provide(PgClient.layer({ url: Redacted.make(urls.postgres) }))
  )
  yield* Console.log(`migrations: ${applied.length === 0 ? "up to date" : applied.map((m) => m.name).join(", ")}`)

  // Each project connects as a role of its own to a database of its own (the operator model), not as the
  // administrator whose URL `urls.postgres` is: that one only prepares them.
  const postgres = yield* prepareDatabases(urls.postgres)
  const registry = yield* Registry.makeMemory()
  const projects = demoProjects(urls, postgres)
  for (const p of projects) yield* registry.memory.register(p)

  const base = `http://127.0.0.1:${port}`
  const server = App.layer({
    port,
    knownProjects: projects.map((p) => ({ id: p.id, tier: p.tier })),
    tenancy: { healthCheckInterval: "10 seconds", breakers: { redis: { resetTimeout: "5 seconds" } } }
  }).pipe(Layer.provide(Layer.succeed(Registry.ProjectRegistry, registry.registry)))

  yield* Layer.launch(server).pipe(
    Effect.forkScoped,
    Effect.andThen(
      Console.log(
        [
          "",
          "tenantpool demo is running:",
          `  API      ${base}/projects/${projects[0]!.id}/kv/hello   ${base}/projects/${projects[0]!.id}/items`,
          `  health   ${base}/health   (per project: ${base}/projects/${projects[0]!.id}/health)`,
          `  metrics  ${base}/metrics`,
          `  status   ${base}/status   (projects, targets, pools, breakers, events)`,
          "",
          `demo projects: ${projects.map((p) => `${p.id} (${p.tier})`).join(", ")}`,
          "No authentication: anyone who reaches this port may act as any project. Keep it on 127.0.0.1.",
          "Ctrl-C stops it."
        ].join("\n")
      )
    )
  )
  if (flag("load"))
    yield* Effect.forkScoped(
      runLoad(
        base,
        projects.map((p) => p.id),
        { line }
      )
    )
  const exitAfter = option("exit-after")
  if (exitAfter !== undefined) yield* Effect.sleep(`${Number(exitAfter)} seconds`)
  else yield* Effect.never
}).pipe(Effect.scoped)

// With --load, log lines are printed above its progress line instead of into it.
const line = progressLine()
NodeRuntime.runMain(
  flag("load") ? main.pipe(Effect.provide(Logger.layer([loggerAbove(line, Logger.defaultLogger)]))) : main
)
