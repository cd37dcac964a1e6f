/**
 * The per-target clients on their own, with a fake driver client (no server): projects on one target share a client
 * sized for the highest tier among them, a replaced client closes once its work drains (or at the retire timeout,
 * on the TestClock), and closing the layer's scope closes what is retired and leaves no fiber running.
 */
import { EventEmitter } from "node:events"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberSet from "effect/FiberSet"
import * as Scope from "effect/Scope"
import { TestClock } from "effect/testing"
import type { MongoClient, MongoClientOptions } from "mongodb"
import type { ProjectHandle } from "@tenantpool/core/CurrentProject"
import * as Target from "@tenantpool/core/Target"
import { defaults, type TierName } from "@tenantpool/core/Tier"
import { clientKey, type Member, Targets } from "../src/internal/targetClients.ts"

// A driver client that only counts: the options it was made with, and how often it was closed.
class FakeClient extends EventEmitter {
  readonly options: MongoClientOptions
  closes = 0
  constructor(options: MongoClientOptions) {
    super()
    this.options = options
  }
  close(): Promise<void> {
    this.closes++
    return Promise.resolve()
  }
}

const project = (id: string, tierName: TierName): { tierName: TierName } & ProjectHandle =>
  ({ id, tierName }) as { tierName: TierName } & ProjectHandle

const mongo = (url: string) => Target.parseSync("mongodb", url)

// The clients of every target, their background fibers in a FiberSet of the given scope (the layer's, in the engine).
const makeTargets = (scope: Scope.Scope, retireMillis = 60_000) =>
  Effect.gen(function* () {
    const made: Array<FakeClient> = []
    const fibers = yield* FiberSet.make<void, never>()
    const fork = yield* FiberSet.runtime(fibers)<never>()
    const targets = new Targets<Member>({
      settings: {
        factory: (_url, options) => {
          const client = new FakeClient(options)
          made.push(client)
          return client as unknown as MongoClient
        },
        options: { appName: "test" },
        maxPoolSize: 20,
        minPoolSize: 0,
        retireMillis
      },
      limits: (p) => defaults[p.tierName],
      refresh: () => {},
      recordAcquire: () => {},
      fork: (effect) => {
        fork(effect)
      },
      now: () => 0
    })
    return { targets, made, fibers }
  }).pipe(Scope.provide(scope))

// Binds `member` to its target's clients in `scope` (what the engine's `bind` does).
const bindIn = (targets: Targets<Member>, scope: Scope.Scope, member: Member, url: string) =>
  Effect.tap(targets.acquire(member.project, mongo(url)), (clients) => Effect.sync(() => clients.bind(member))).pipe(
    Scope.provide(scope)
  )

describe("TargetClients", () => {
  it.effect("projects on one server share one client, closed with the last of them", () =>
    Effect.gen(function* () {
      const { targets, made } = yield* makeTargets(yield* Effect.scope)
      const [a, b] = [yield* Scope.make(), yield* Scope.make()]
      const first = yield* bindIn(targets, a, { project: project("a", "FREE") }, "mongodb://db.local:27017/a")
      const second = yield* bindIn(targets, b, { project: project("b", "FREE") }, "mongodb://db.local:27017/b")
      assert.strictEqual(first, second, "one set of clients for the server")
      assert.strictEqual(made.length, 1)
      yield* Scope.close(a, Exit.void)
      assert.strictEqual(made[0]!.closes, 0, "still used by the other project")
      yield* Scope.close(b, Exit.void)
      assert.strictEqual(made[0]!.closes, 1, "closed with the last project")
      assert.strictEqual(targets.byKey.size, 0)
    })
  )

  it.effect("a user defined in the URL's database is another identity in another database", () =>
    Effect.sync(() => {
      const a = mongo("mongodb://app:secret@db.local:27017/a")
      const b = mongo("mongodb://app:secret@db.local:27017/b")
      const admin = (db: string) => mongo(`mongodb://app:secret@db.local:27017/${db}?authSource=admin`)
      assert.notStrictEqual(clientKey(a), clientKey(b))
      assert.strictEqual(clientKey(admin("a")), clientKey(admin("b")))
    })
  )

  it.effect("a higher tier starts a larger client for new work; the idle old one closes at once", () =>
    Effect.gen(function* () {
      const scope = yield* Effect.scope
      const { targets, made } = yield* makeTargets(scope)
      const clients = yield* bindIn(targets, scope, { project: project("free", "FREE") }, "mongodb://db.local/a")
      assert.strictEqual(clients.current.maxPoolSize, defaults.FREE.maxPool)
      yield* bindIn(targets, scope, { project: project("pro", "PRO") }, "mongodb://db.local/b")
      assert.strictEqual(made.length, 2)
      assert.strictEqual(clients.current.maxPoolSize, 20, "the PRO pool, capped by maxPoolSize")
      assert.strictEqual(made[1]!.options.maxPoolSize, 20)
      assert.strictEqual(clients.top?.project.id, "pro", "acquire times are recorded under the highest tier")
      yield* Effect.yieldNow
      assert.strictEqual(made[0]!.closes, 1, "nothing was in flight on the old client")
    })
  )

  it.effect("a replaced client with work in flight closes when that work drains", () =>
    Effect.gen(function* () {
      const scope = yield* Effect.scope
      const { targets, made } = yield* makeTargets(scope)
      const member = { project: project("p", "FREE") }
      const clients = yield* bindIn(targets, scope, member, "mongodb://db.local/a")
      const old = clients.current
      old.inflight++
      member.project.tierName = "PRO"
      clients.resize()
      yield* Effect.yieldNow
      assert.strictEqual(made[0]!.closes, 0, "still serving the call it started")
      assert.strictEqual(clients.details().clients, 2, "both count while the old one drains")
      clients.release(old)
      yield* Effect.yieldNow
      assert.strictEqual(made[0]!.closes, 1)
      assert.strictEqual(clients.details().clients, 1)
    })
  )

  it.effect("a replaced client that never drains closes at the retire timeout", () =>
    Effect.gen(function* () {
      const scope = yield* Effect.scope
      const { targets, made } = yield* makeTargets(scope, 10_000)
      const member = { project: project("p", "FREE") }
      const clients = yield* bindIn(targets, scope, member, "mongodb://db.local/a")
      clients.current.inflight++
      member.project.tierName = "PRO"
      clients.resize()
      yield* TestClock.adjust("9 seconds")
      assert.strictEqual(made[0]!.closes, 0)
      yield* TestClock.adjust("1 second")
      assert.strictEqual(made[0]!.closes, 1, "closed although a call is still in flight")
    })
  )

  it.effect("closing the layer closes a retired client at once, not at the retire timeout", () =>
    Effect.gen(function* () {
      const layer = yield* Scope.make()
      const { targets, made, fibers } = yield* makeTargets(layer)
      yield* Scope.addFinalizer(
        layer,
        Effect.suspend(() => targets.shutdown())
      )
      const member = { project: project("p", "FREE") }
      const clients = yield* bindIn(targets, yield* Effect.scope, member, "mongodb://db.local/a")
      clients.current.inflight++
      member.project.tierName = "PRO"
      clients.resize()
      yield* Effect.yieldNow
      assert.strictEqual(targets.retiring.size, 1)
      assert.strictEqual(yield* FiberSet.size(fibers), 1, "a fiber in the layer's scope waits for it to drain")
      yield* Scope.close(layer, Exit.void)
      assert.strictEqual(made[0]!.closes, 1, "closed by the shutdown, not 10 minutes later")
      assert.strictEqual(targets.retiring.size, 0)
      assert.isTrue(targets.shutDown)
    })
  )

  it.effect("after shutdown a retired client closes at once: no fiber would be left to close it", () =>
    Effect.gen(function* () {
      const scope = yield* Effect.scope
      const { targets, made } = yield* makeTargets(scope)
      const bound = yield* Scope.make()
      const clients = yield* bindIn(targets, bound, { project: project("p", "FREE") }, "mongodb://db.local/a")
      yield* targets.shutdown()
      clients.current.inflight++
      yield* Scope.close(bound, Exit.void)
      assert.strictEqual(made[0]!.closes, 1, "closed with its last project although a call was in flight")
    })
  )
})
