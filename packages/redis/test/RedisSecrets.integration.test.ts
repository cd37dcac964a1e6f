/**
 * S1: a canary password never leaves the library. The private server requires `CANARY-<uuid>-p@ss/#`; projects
 * connect with it (percent-encoded), with a wrong password that contains it, and through a server stop. Every
 * error (message, `String`, JSON, `Cause.pretty`), every log line at every level, the events, the connection
 * metadata and the Prometheus text are searched for it in plain, percent-encoded and base64 forms.
 */
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
import { RedisEngine } from "../src/RedisEngine.ts"
import * as Fx from "./fixtures/Redis.ts"

const { captureLogs, leaks, logs, secret: canary } = Canary.make()

const registry: Metric.MetricRegistry = new Map()

describe("RedisEngine secrets", () => {
  it.live("the canary password appears in no error, log line, event or metric, through auth failures and a stop", () =>
    Effect.gen(function* () {
      const server = yield* Servers.acquirePrivate("redis")
      const port = new URL(server.url).port
      const rawClient = yield* Fx.raw(server.url)
      yield* Fx.call(() => rawClient.config("SET", "requirepass", canary))

      // Console output of the driver (ioredis warns through console.*) is captured too.
      const consoleLines: Array<string> = []
      const methods = ["log", "info", "warn", "error", "debug"] as const
      const originals = methods.map((m) => console[m])
      yield* Effect.acquireRelease(
        Effect.sync(() => {
          for (const m of methods)
            console[m] = (...args: Array<unknown>) => void consoleLines.push(args.map(String).join(" "))
        }),
        () =>
          Effect.sync(() => {
            methods.forEach((m, i) => (console[m] = originals[i]!))
          })
      )

      const projects = yield* MemoryRegistry
      const redis = yield* RedisEngine
      const tenancy = yield* Tenancy.Tenancy
      const good = Fx.projectId("secret-good")
      const wrong = Fx.projectId("secret-wrong")
      const named = Fx.projectId("secret-user")
      yield* projects.register({
        id: good,
        tier: "PRO",
        redis: `redis://:${encodeURIComponent(canary)}@127.0.0.1:${port}/0`
      })
      yield* projects.register({
        id: wrong,
        tier: "PRO",
        redis: `redis://:${encodeURIComponent(`${canary}-wrong`)}@127.0.0.1:${port}/0`
      })
      yield* projects.register({
        id: named,
        tier: "PRO",
        redis: `redis://default:${encodeURIComponent(`${canary}x`)}@127.0.0.1:${port}/0?db=1`
      })

      const exits: Array<Exit.Exit<unknown, unknown>> = []
      const record = <A, E, R>(self: Effect.Effect<A, E, R>) =>
        Effect.tap(Effect.exit(self), (exit) => Effect.sync(() => exits.push(exit)))

      // The right password works.
      yield* redis.set("k", "v").pipe(tenancy.withProject(good))
      assert.strictEqual(yield* redis.get("k").pipe(tenancy.withProject(good)), "v")

      // Wrong passwords: shared connection, dedicated connection, subscription, health check.
      for (const id of [wrong, named]) {
        yield* record(redis.get("k").pipe(tenancy.withProject(id)))
        yield* record(redis.incr("n").pipe(tenancy.withProject(id)))
        yield* record(redis.blpop(["q"], "50 millis").pipe(tenancy.withProject(id)))
        yield* record(redis.subscribe("c").pipe(Stream.take(1), Stream.runCollect, tenancy.withProject(id)))
        yield* record(redis.healthCheck.pipe(tenancy.withProject(id)))
        yield* record(redis.poolStats.pipe(tenancy.withProject(id)))
        yield* record(tenancy.checkHealth(id, "redis"))
      }
      assert.isTrue(
        exits.some((e) => Exit.isFailure(e)),
        "the wrong passwords failed"
      )

      // The server goes away under the right password.
      yield* Servers.stop(server)
      yield* record(redis.get("k").pipe(tenancy.withProject(good)))
      yield* record(redis.incr("n").pipe(tenancy.withProject(good)))
      yield* record(redis.blpop(["q"], "50 millis").pipe(tenancy.withProject(good)))
      yield* record(tenancy.checkHealth(good, "redis"))
      yield* Effect.log("a log line at the end of the run, to prove the logger captures")

      const texts: Array<readonly [string, string]> = []
      for (const exit of exits) {
        if (Exit.isSuccess(exit)) {
          texts.push(["success", JSON.stringify(exit.value)])
          continue
        }
        texts.push(["Cause.pretty", Cause.pretty(exit.cause)])
        texts.push(["JSON cause", JSON.stringify(exit.cause)])
        for (const error of Cause.prettyErrors(exit.cause)) {
          texts.push(["message", error.message])
          texts.push(["String", String(error)])
          texts.push(["stack", error.stack ?? ""])
        }
        for (const failure of exit.cause.reasons) {
          const value = failure._tag === "Fail" ? failure.error : failure._tag === "Die" ? failure.defect : undefined
          texts.push(["JSON error", JSON.stringify(value)])
          texts.push(["String error", String(value)])
          const cause = (value as { cause?: unknown } | undefined)?.cause
          if (cause !== undefined) texts.push(["JSON error.cause", JSON.stringify(cause)])
        }
      }
      texts.push(["events", JSON.stringify(yield* tenancy.recentEvents)])
      texts.push(["connections", JSON.stringify(yield* tenancy.connections)])
      texts.push(["prometheus", yield* PrometheusMetrics.format()])
      for (const line of logs) texts.push(["log", line])
      for (const line of consoleLines) texts.push(["console", line])

      const found = texts.flatMap(([sink, text]) => leaks(text).map((form) => `${sink}: ${form}`))
      assert.deepStrictEqual(found, [])
      assert.isTrue(
        logs.some((l) => l.includes("a log line at the end")),
        "the logger captured"
      )
      assert.isTrue(
        texts.some(([sink, t]) => sink === "prometheus" && t.includes("db_errors_total")),
        "the Prometheus text covers the errors"
      )
      assert.isTrue(texts.filter(([sink]) => sink === "message").length >= 10, "errors were inspected")
    }).pipe(
      Effect.provide(
        Fx.layer({
          tenancy: {
            breakers: { redis: { attemptTimeout: "300 millis" } },
            retry: Schedule.recurs(0),
            healthCheckTimeout: "300 millis"
          }
        })
      ),
      Effect.provide(captureLogs),
      Effect.provideService(Metric.MetricRegistry, registry)
    )
  )
})
