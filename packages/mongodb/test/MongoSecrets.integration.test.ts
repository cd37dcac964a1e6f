/**
 * S1: a canary password never leaves the library. FerretDB v1 on SQLite does no authentication (it refuses the
 * SCRAM handshake), and a MongoDB without users refuses it too, so the canary cannot be a working password here; it is
 * instead the password of projects that fail in every way the driver can: refused authentication on a live server,
 * a port nobody listens on, a connection string the driver rejects, and a server stopped under a project. Every
 * error (message, `String`, JSON, `Cause.pretty`), every log line at every level, console output and process
 * warnings, the events, the connection metadata and the Prometheus text are searched for it in plain,
 * percent-encoded and base64 forms.
 */
import * as net from "node:net"
import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Metric from "effect/Metric"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import { PrometheusMetrics } from "effect/observability"
import { MemoryRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as Canary from "@tenantpool/testing/Canary"
import * as Servers from "@tenantpool/testing/Servers"
import { MongoEngine } from "../src/MongoEngine.ts"
import * as Fx from "./fixtures/Mongo.ts"

const { captureLogs, leaks, logs, secret: canary } = Canary.make()

// A loopback port with nobody listening on it.
const closedPort = Effect.promise(
  () =>
    new Promise<number>((resolve) => {
      const srv = net.createServer()
      srv.listen(0, "127.0.0.1", () => {
        const port = (srv.address() as net.AddressInfo).port
        srv.close(() => resolve(port))
      })
    })
)

const json = (value: unknown) =>
  JSON.stringify(value, (_, v) =>
    typeof v === "bigint" ? String(v) : v instanceof Error ? { ...v, message: v.message, stack: v.stack } : v
  )

describe("MongoEngine secrets", () => {
  it.live("the canary password appears in no error, log line, event or metric, whatever fails", () =>
    Effect.gen(function* () {
      const server = yield* Servers.acquirePrivate("mongodb")
      const port = server.port
      const nobody = yield* closedPort
      const consoleLines: Array<string> = []
      const methods = ["log", "info", "warn", "error", "debug"] as const
      const originals = methods.map((m) => console[m])
      const onWarning = (w: Error) => void consoleLines.push(`${w.name} ${w.message} ${w.stack ?? ""}`)
      yield* Effect.acquireRelease(
        Effect.sync(() => {
          for (const m of methods)
            console[m] = (...args: Array<unknown>) => void consoleLines.push(args.map(String).join(" "))
          process.on("warning", onWarning)
        }),
        () =>
          Effect.sync(() => {
            methods.forEach((m, i) => (console[m] = originals[i]!))
            process.off("warning", onWarning)
          })
      )

      const registry = yield* MemoryRegistry
      const tenancy = yield* Tenancy.Tenancy
      const mongo = yield* MongoEngine
      const secret = encodeURIComponent(canary)
      const cases = {
        refused: `mongodb://tenant:${secret}@127.0.0.1:${port}/canary_db`,
        unreachable: `mongodb://tenant:${secret}@127.0.0.1:${nobody}/canary_db`,
        rejectedOptions: `mongodb://tenant:${secret}@127.0.0.1:${port}/canary_db?readPreference=nowhere&authSource=admin`,
        stopped: `mongodb://127.0.0.1:${port}/canary_db?appName=${secret}`
      }
      const ids: Record<keyof typeof cases, string> = {
        refused: Fx.projectId("canary-refused"),
        unreachable: Fx.projectId("canary-unreachable"),
        rejectedOptions: Fx.projectId("canary-options"),
        stopped: Fx.projectId("canary-stopped")
      }
      for (const key of Object.keys(cases) as Array<keyof typeof cases>) {
        yield* registry.register({ id: ids[key], tier: "PRO", mongodb: cases[key] })
      }

      const exits: Array<Exit.Exit<unknown, unknown>> = []
      const record = <A, E, R>(self: Effect.Effect<A, E, R>) =>
        Effect.tap(Effect.exit(self), (exit) => Effect.sync(() => exits.push(exit)))
      const users = mongo.collection<{ name: string }>("users")
      const everything = (id: string) =>
        Effect.gen(function* () {
          yield* record(users.insertOne({ name: "x" }).pipe(tenancy.withProject(id)))
          yield* record(users.findOne({ name: "x" }).pipe(tenancy.withProject(id)))
          yield* record(users.find({}).pipe(tenancy.withProject(id)))
          yield* record(users.updateOne({ name: "x" }, { $set: { name: "y" } }).pipe(tenancy.withProject(id)))
          yield* record(users.aggregate([{ $match: {} }]).pipe(tenancy.withProject(id)))
          yield* record(Stream.runCollect(users.stream({})).pipe(tenancy.withProject(id)))
          yield* record(users.createIndex({ name: 1 }).pipe(tenancy.withProject(id)))
          yield* record(
            mongo.transaction((tx) => tx.collection("users").insertOne({ name: "t" })).pipe(tenancy.withProject(id))
          )
          yield* record(mongo.healthCheck.pipe(tenancy.withProject(id)))
          yield* record(mongo.poolStats.pipe(tenancy.withProject(id)))
          yield* record(tenancy.checkHealth(id, "mongodb"))
        })

      // The stopped case works first, then loses its server.
      yield* users.insertOne({ name: "before" }).pipe(tenancy.withProject(ids.stopped))
      yield* everything(ids.refused)
      yield* everything(ids.unreachable)
      yield* everything(ids.rejectedOptions)
      yield* Servers.stop(server)
      yield* everything(ids.stopped)
      yield* Effect.log("a log line at the end of the run, to prove the logger captures")

      const failures = exits.filter(Exit.isFailure)
      assert.isAtLeast(failures.length, 30, "the canary projects failed")
      const texts: Array<readonly [string, string]> = []
      for (const exit of exits) {
        if (Exit.isSuccess(exit)) {
          texts.push(["success", json(exit.value)])
          continue
        }
        texts.push(["Cause.pretty", Cause.pretty(exit.cause)])
        texts.push(["JSON cause", json(exit.cause)])
        for (const error of Cause.prettyErrors(exit.cause)) {
          texts.push(["message", error.message])
          texts.push(["String", String(error)])
          texts.push(["stack", error.stack ?? ""])
        }
        for (const reason of exit.cause.reasons) {
          const value = reason._tag === "Fail" ? reason.error : reason._tag === "Die" ? reason.defect : undefined
          texts.push(["JSON error", json(value)])
          texts.push(["String error", String(value)])
          const cause = (value as { cause?: unknown } | undefined)?.cause
          if (cause !== undefined) texts.push(["JSON error.cause", json(cause)])
        }
      }
      texts.push(["events", json(yield* tenancy.recentEvents)])
      texts.push(["connections", json(yield* tenancy.connections)])
      texts.push(["prometheus", yield* PrometheusMetrics.format()])
      for (const line of logs) texts.push(["log", line])
      for (const line of consoleLines) texts.push(["console", line])

      const found = texts.flatMap(([sink, text]) => leaks(text).map((form) => `${sink}: ${form}`))
      assert.deepStrictEqual(found, [])
      assert.isTrue(
        logs.some((l) => l.includes("a log line at the end")),
        "the logger captured"
      )
      const messages = texts.filter(([sink]) => sink === "message").map(([, t]) => t)
      assert.isTrue(
        messages.some((m) => m.includes("(auth 18)")),
        "the refused authentication was reported"
      )
      assert.isTrue(
        messages.some((m) => m.includes("server_selection") || m.includes("circuit open")),
        "the unreachable server was reported"
      )
      assert.isTrue(
        messages.some((m) => m.includes("invalid_argument")),
        "the rejected connection string was reported"
      )
      assert.isTrue(
        texts.some(([sink, t]) => sink === "prometheus" && t.includes("db_errors_total")),
        "the Prometheus text covers the errors"
      )
    }).pipe(
      Effect.provide(
        Fx.layer({
          tenancy: {
            breakers: { mongodb: { attemptTimeout: "500 millis" } },
            retry: Schedule.recurs(0),
            healthCheckTimeout: "500 millis"
          },
          engine: { serverSelectionTimeout: "400 millis", healthCheckTimeout: "500 millis" }
        })
      ),
      Effect.provide(captureLogs),
      Effect.provideService(Metric.MetricRegistry, new Map())
    )
  )
})
