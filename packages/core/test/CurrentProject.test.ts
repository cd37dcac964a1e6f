import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Logger from "effect/Logger"
import * as References from "effect/References"
import { CurrentProject } from "../src/CurrentProject.ts"
import { MemoryRegistry } from "../src/Registry.ts"
import * as Tenancy from "../src/Tenancy.ts"
import * as Fake from "./fixtures/FakeEngine.ts"
import * as H from "./fixtures/Harness.ts"

const setup = Effect.gen(function* () {
  const server = Fake.makeServer()
  const tenancy = yield* Tenancy.Tenancy
  yield* H.registerAll(["acme"], "STARTER")
  yield* H.registerAll(["beta"], "PRO")
  const engine = yield* tenancy.register(Fake.adapter(server))
  return { server, tenancy, engine, get: engine.runEffect(Fake.get, Fake.op(server, 0)) }
})

const currentId = Effect.map(CurrentProject, (p) => p?.id)

describe("CurrentProject", () => {
  it.effect("withProject sets it; outside it is unset", () =>
    Effect.gen(function* () {
      const { tenancy } = yield* setup
      assert.isUndefined(yield* currentId)
      const handle = yield* CurrentProject.pipe(tenancy.withProject("acme"))
      assert.strictEqual(handle?.id, "acme")
      assert.strictEqual(handle?.tierName, "STARTER")
      assert.strictEqual(handle?.config.targets.redis?.host, "cache.internal")
      assert.strictEqual(yield* currentId.pipe(Tenancy.withProject("beta")), "beta", "the module-level combinator too")
      assert.strictEqual(
        yield* currentId.pipe(tenancy.withProject("acme"), tenancy.withProject("beta")),
        "acme",
        "the innermost project wins"
      )
    }).pipe(H.provide())
  )

  it.effect("forked fibers inherit it", () =>
    Effect.gen(function* () {
      const { tenancy, get } = yield* setup
      const [child, all, op] = yield* Effect.gen(function* () {
        const child = yield* Effect.forkChild(currentId)
        const all = yield* Effect.forEach([1, 2, 3], () => currentId, { concurrency: "unbounded" })
        const op = yield* Effect.forkChild(get)
        return [yield* Fiber.join(child), all, yield* Fiber.join(op)] as const
      }).pipe(tenancy.withProject("acme"))
      assert.strictEqual(child, "acme")
      assert.deepStrictEqual(all as ReadonlyArray<string | undefined>, ["acme", "acme", "acme"])
      assert.strictEqual(op, "ok")
      assert.strictEqual((yield* tenancy.connections)[0]!.projectId, "acme")
    }).pipe(H.provide())
  )

  it.effect("log lines inside a project carry project_id", () =>
    Effect.gen(function* () {
      const { tenancy } = yield* setup
      const lines: Array<{ message: unknown; projectId: unknown }> = []
      const capture = Logger.make((options) => {
        lines.push({
          message: options.message,
          projectId: options.fiber.getRef(References.CurrentLogAnnotations)["project_id"]
        })
      })
      yield* Effect.gen(function* () {
        yield* Effect.log("outside")
        yield* Effect.gen(function* () {
          yield* Effect.log("inside")
          yield* Effect.forkChild(Effect.log("in a child")).pipe(Effect.flatMap(Fiber.join))
        }).pipe(tenancy.withProject("acme"))
      }).pipe(Effect.provide(Logger.layer([capture])))
      assert.deepStrictEqual(lines, [
        { message: ["outside"], projectId: undefined },
        { message: ["inside"], projectId: "acme" },
        { message: ["in a child"], projectId: "acme" }
      ])
    }).pipe(H.provide())
  )

  it.effect("an engine operation outside any project fails with NoCurrentProject", () =>
    Effect.gen(function* () {
      const { server, get } = yield* setup
      const error = yield* Effect.flip(get)
      assert.strictEqual(error._tag, "NoCurrentProject")
      assert.include(error.message, "withProject")
      assert.strictEqual(server.calls, 0)
    }).pipe(H.provide())
  )

  it.effect("an unknown project fails with ProjectNotFound before touching the engine", () =>
    Effect.gen(function* () {
      const { server, tenancy, get } = yield* setup
      const error = yield* Effect.flip(get.pipe(tenancy.withProject("ghost")))
      assert.strictEqual(error._tag, "ProjectNotFound")
      assert.deepStrictEqual([server.calls, server.bindingsCreated], [0, 0])
      assert.strictEqual((yield* tenancy.stats).liveProjects, 0)
      const invalid = yield* Effect.flip(get.pipe(tenancy.withProject("Not Valid")))
      assert.strictEqual(invalid._tag, "InvalidProjectId")
      assert.strictEqual(server.calls, 0)
    }).pipe(H.provide())
  )

  it.effect("a project without the engine's target fails with EngineNotConfigured", () =>
    Effect.gen(function* () {
      const { server, tenancy } = yield* setup
      const registry = yield* MemoryRegistry
      yield* registry.register({ id: "pg-only", tier: "FREE", postgres: "postgres://db/app" })
      const error = yield* Effect.flip(
        tenancy.register(Fake.adapter(server)).pipe(
          Effect.flatMap((engine) => engine.runEffect(Fake.get, Fake.op(server, 0))),
          tenancy.withProject("pg-only")
        )
      )
      assert.strictEqual(error._tag, "EngineNotConfigured")
      assert.include(error.message, 'project "pg-only" has no redis database configured')
    }).pipe(H.provide())
  )

  it.effect("layerProject(id) provides it and keeps the project alive while the layer is", () =>
    Effect.gen(function* () {
      const { server, tenancy, get } = yield* setup
      yield* Effect.gen(function* () {
        assert.strictEqual(yield* currentId, "beta")
        assert.strictEqual(yield* get, "ok")
        assert.strictEqual(yield* tenancy.closeIdleConnections({ idleFor: 0 }), 0, "held by the layer")
        assert.strictEqual(yield* get, "ok")
      }).pipe(Effect.provide(Tenancy.layerProject("beta")))
      assert.strictEqual(server.usedClosed, 0)
      assert.strictEqual(yield* tenancy.closeIdleConnections({ idleFor: 0 }), 1, "released with the layer")
      const missing = yield* Effect.flip(get.pipe(Effect.provide(Tenancy.layerProject("ghost"))))
      assert.strictEqual(missing._tag, "ProjectNotFound")
    }).pipe(H.provide())
  )

  it.effect("a handle not made by this service is looked up by its id; a forged id is no project at all", () =>
    Effect.gen(function* () {
      const { tenancy, get, server } = yield* setup
      const acme = yield* CurrentProject.pipe(tenancy.withProject("acme"))
      // A hand-made handle claiming another tier: the registry's answer counts, not the handle's.
      const made = { id: acme!.id, tierName: "ENTERPRISE" as const, config: acme!.config }
      assert.strictEqual(yield* get.pipe(Effect.provideService(CurrentProject, made)), "ok")
      assert.strictEqual((yield* tenancy.connections).find((c) => c.projectId === "acme")?.tier, "STARTER")
      const forged = { ...made, id: "../../etc" as typeof made.id }
      const error = yield* Effect.flip(get.pipe(Effect.provideService(CurrentProject, forged)))
      assert.strictEqual(error._tag, "NoCurrentProject")
      assert.strictEqual(server.calls, 1)
    }).pipe(H.provide())
  )
})
