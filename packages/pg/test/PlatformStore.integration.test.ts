/**
 * The platform store on a migrated platform database, connected as the application role: connection strings
 * stored only as AES-256-GCM ciphertext bound to their row, key rotation, the registry behind the tenancy service
 * picking up tier and target changes made elsewhere at runtime, unknown ids, and the recorder writing events,
 * health and metrics in batches.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as SqlClient from "effect/sql/SqlClient"
import { ProjectNotFound } from "@tenantpool/core/Errors"
import * as ProjectId from "@tenantpool/core/ProjectId"
import { ProjectRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as PlatformAdmin from "../src/PlatformAdmin.ts"
import * as PlatformRecorder from "../src/PlatformRecorder.ts"
import * as PlatformRegistry from "../src/PlatformRegistry.ts"
import * as PlatformStore from "../src/PlatformStore.ts"
import * as Fx from "./fixtures/Engine.ts"
import * as Px from "./fixtures/Platform.ts"

const pid = (id: string) => ProjectId.ProjectId.make(id)

/** Reads the raw rows of platform.databases as text, the way a curious reader with SELECT would. */
const rowsAsText = (obs: SqlClient.SqlClient) =>
  Effect.map(obs<{ t: string }>`select d::text as t from platform.databases d`, (rows) => rows.map((r) => r.t))

describe("PlatformStore", () => {
  it.live("stores connection strings only as ciphertext bound to their row; the registry decrypts them", () =>
    Effect.gen(function* () {
      const db = yield* Px.platformDatabase("store_crypto")
      const obs = yield* Fx.observer(db.url)
      const secret = `PLAIN-${crypto.randomUUID()}`
      const tenantUrl = `postgres://owner:${secret}@db.example.internal:6543/acme_main?sslmode=require`
      yield* Effect.gen(function* () {
        const store = yield* PlatformStore.PlatformStore
        yield* store.registerProject({ id: "acme", tier: "STARTER" })
        yield* store.putDatabase({ projectId: "acme", engine: "postgres", connectionString: Redacted.make(tenantUrl) })

        const [row] = yield* obs<{
          host: string
          port: number
          database_name: string
          key_id: string
          nonce: number
          tag_and_body: number
        }>`select host, port, database_name, connection_key_id as key_id, octet_length(connection_nonce) as nonce,
                  octet_length(connection_ciphertext) as tag_and_body
           from platform.databases where project_id = 'acme'`
        assert.deepStrictEqual(row, {
          host: "db.example.internal",
          port: 6543,
          database_name: "acme_main",
          key_id: "k1",
          nonce: 12,
          tag_and_body: Buffer.byteLength(tenantUrl) + 16
        })
        for (const text of yield* rowsAsText(obs)) {
          assert.notInclude(text, secret)
          assert.notInclude(text, "owner:")
        }

        const config = yield* store.registry.lookup(pid("acme"))
        assert.strictEqual(config.tier, "STARTER")
        const target = config.targets.postgres!
        assert.strictEqual(target.label, "postgres://owner@db.example.internal:6543/acme_main")
        assert.strictEqual(Redacted.value(target.password!), secret)
        assert.strictEqual(target.tls, "require")
        assert.notInclude(JSON.stringify(config), secret)

        // A ciphertext copied into another project's row does not decrypt there (the AAD binds it to its row).
        yield* store.registerProject({ id: "mallory", tier: "FREE" })
        yield* obs`insert into platform.databases (project_id, database_type, connection_ciphertext, connection_nonce,
                                                   connection_key_id)
                   select 'mallory', database_type, connection_ciphertext, connection_nonce, connection_key_id
                   from platform.databases where project_id = 'acme'`
        const exit = yield* Effect.exit(store.registry.lookup(pid("mallory")))
        assert.isTrue(Exit.isFailure(exit) && Cause.hasDies(exit.cause))
        const defect = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
        assert.instanceOf(defect, PlatformStore.PlatformStoreError)
        assert.include((defect as Error).message, "does not authenticate")
        assert.notInclude((defect as Error).message, secret)
      }).pipe(Effect.provide(PlatformStore.layer({ url: Redacted.make(db.appUrl), keys: Px.keys("k1") })))
    })
  )

  it.live("keys rotate: old ciphertexts decrypt under the ring, rotateKeys moves them to the primary key", () =>
    Effect.gen(function* () {
      const db = yield* Px.platformDatabase("store_rotate")
      const obs = yield* Fx.observer(db.url)
      const k1 = Px.keys("k1")
      const k2 = Px.keys("k2")
      const url = "postgres://app:pw-one@10.0.0.7:5432/one"
      const withRing = (keys: Redacted.Redacted<string>) =>
        PlatformStore.layer({ url: Redacted.make(db.appUrl), keys, pollInterval: 0 })
      const lookup = Effect.flatMap(PlatformStore.PlatformStore, (s) => s.registry.lookup(pid("one")))
      yield* Effect.flatMap(PlatformStore.PlatformStore, (store) =>
        Effect.andThen(
          store.registerProject({ id: "one", tier: "PRO" }),
          store.putDatabase({ projectId: "one", engine: "postgres", connectionString: url })
        )
      ).pipe(Effect.provide(withRing(k1)))

      // The new ring encrypts with k2 and still reads k1.
      const rotated = yield* Effect.gen(function* () {
        const config = yield* lookup
        assert.strictEqual(Redacted.value(config.targets.postgres!.url), url)
        return yield* (yield* PlatformStore.PlatformStore).rotateKeys
      }).pipe(Effect.provide(withRing(Px.ring(k2, k1))))
      assert.strictEqual(rotated, 1)
      const [row] = yield* obs<{ key: string; version: string }>`
        select connection_key_id as key, version::text as version from platform.databases`
      assert.deepStrictEqual(row, { key: "k2", version: "2" }, "a new ciphertext bumps the row's version")

      // k2 alone reads it; k1 alone no longer does, and says which key is missing.
      const config = yield* lookup.pipe(Effect.provide(withRing(k2)))
      assert.strictEqual(Redacted.value(config.targets.postgres!.url), url)
      const exit = yield* Effect.exit(lookup.pipe(Effect.provide(withRing(k1))))
      assert.isTrue(Exit.isFailure(exit))
      const defect = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
      assert.include((defect as Error).message, `key id "k2" is not in the key ring`)

      // A key ring that is not one is refused at start-up, without quoting it.
      const bad = yield* Effect.flip(
        Layer.build(PlatformStore.layer({ url: Redacted.make(db.appUrl), keys: Redacted.make("k1:c2hvcnQ=") }))
      )
      assert.strictEqual(bad._tag, "InvalidConfig")
      assert.notInclude(bad.message, "c2hvcnQ=")
    })
  )

  it.live("the tenancy service follows tier and target changes made by another process, without a restart", () =>
    Effect.gen(function* () {
      const db = yield* Px.platformDatabase("store_changes")
      const obs = yield* Fx.observer(db.url)
      const tenantA = yield* Fx.freshDatabase("tenant_a")
      const tenantB = yield* Fx.freshDatabase("tenant_b")
      const keys = Px.keys("k1")
      const storeOptions = { url: Redacted.make(db.appUrl), keys, pollInterval: "200 millis" } as const
      // "Another process": its own store on the same platform database.
      const elsewhere = <A, E>(f: (store: PlatformStore.PlatformStore["Service"]) => Effect.Effect<A, E>) =>
        Effect.flatMap(PlatformStore.PlatformStore, f).pipe(
          Effect.provide(PlatformStore.layer({ ...storeOptions, pollInterval: 0 }))
        )
      yield* elsewhere((store) =>
        Effect.andThen(
          store.registerProject({ id: "shop", tier: "FREE" }),
          store.putDatabase({ projectId: "shop", engine: "postgres", connectionString: tenantA })
        )
      )

      yield* Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const tenancy = yield* Tenancy.Tenancy
        const currentDb = sql<{ db: string }>`select current_database() as db`.pipe(
          Effect.map((rows) => rows[0]!.db),
          tenancy.withProject("shop")
        )
        const tier = Effect.map(tenancy.connections, (cs) => cs.find((c) => c.projectId === "shop")?.tier)
        assert.strictEqual(yield* currentDb, new URL(tenantA).pathname.slice(1))
        assert.strictEqual(yield* tier, "FREE")

        // A tier change, written with plain SQL by an operator.
        yield* obs`update platform.projects set tier = 'ENTERPRISE' where id = 'shop'`
        yield* Fx.eventually(
          "the new tier applies",
          Effect.map(tier, (t) => t === "ENTERPRISE"),
          "5 seconds"
        )

        // A target change, written by another process's store.
        yield* elsewhere((store) =>
          store.putDatabase({ projectId: "shop", engine: "postgres", connectionString: tenantB })
        )
        yield* Fx.eventually(
          "statements go to the new database",
          Effect.map(currentDb.pipe(Effect.orDie), (name) => name === new URL(tenantB).pathname.slice(1)),
          "5 seconds"
        )
      }).pipe(Effect.provide(Px.stack(storeOptions)))
    })
  )

  it.live("unknown ids are not found (and cached as such) until the project is created", () =>
    Effect.gen(function* () {
      const db = yield* Px.platformDatabase("store_unknown")
      const obs = yield* Fx.observer(db.url)
      yield* Effect.gen(function* () {
        const registry = yield* ProjectRegistry
        const store = yield* PlatformStore.PlatformStore
        const missing = yield* Effect.flip(registry.lookup(pid("later")))
        assert.instanceOf(missing, ProjectNotFound)
        // Negatively cached: the platform database is not asked again (the statement count stays the same).
        const statements = obs<{ n: string }>`
          select coalesce(sum(xact_commit), 0)::text as n from pg_stat_database where datname = current_database()`
        const before = (yield* statements)[0]!.n
        for (let i = 0; i < 50; i++) yield* Effect.flip(registry.lookup(pid("later")))
        const after = (yield* statements)[0]!.n
        assert.isBelow(Number(after) - Number(before), 10, "fifty lookups of an unknown id cost no queries")

        yield* obs`insert into platform.projects (id, tier) values ('later', 'PRO')`
        yield* store.refresh
        const found = yield* registry.lookup(pid("later"))
        assert.strictEqual(found.tier, "PRO")
        assert.deepStrictEqual(found.targets, {})
      }).pipe(
        Effect.provide(
          PlatformStore.layer({
            url: Redacted.make(db.appUrl),
            keys: Px.keys(),
            pollInterval: 0,
            cache: { negativeTtl: "1 minute" }
          })
        )
      )
    })
  )

  it.live("the recorder writes pool, breaker and health events and per-project metrics in batches", () =>
    Effect.gen(function* () {
      const db = yield* Px.platformDatabase("store_recorder")
      const obs = yield* Fx.observer(db.url)
      const tenant = yield* Fx.freshDatabase("tenant_rec")
      yield* Effect.gen(function* () {
        const store = yield* PlatformStore.PlatformStore
        const sql = yield* SqlClient.SqlClient
        const tenancy = yield* Tenancy.Tenancy
        yield* store.registerProject({ id: "rec", tier: "PRO" })
        yield* store.putDatabase({ projectId: "rec", engine: "postgres", connectionString: tenant })
        // A project whose server is not there: its breaker opens.
        yield* store.registerProject({ id: "gone", tier: "FREE" })
        yield* store.putDatabase({
          projectId: "gone",
          engine: "postgres",
          connectionString: "postgres://x@127.0.0.1:1/x"
        })

        yield* Effect.forEach(Array.from({ length: 20 }), () => sql`select 1`, { discard: true }).pipe(
          tenancy.withProject("rec")
        )
        yield* tenancy.checkHealth("rec", "postgres")
        for (let i = 0; i < 30 && (yield* tenancy.breakerState("gone", "postgres")) !== "open"; i++) {
          yield* Effect.ignore(sql`select 1`.pipe(tenancy.withProject("gone")))
        }
        assert.strictEqual(yield* tenancy.breakerState("gone", "postgres"), "open")
        yield* Effect.sleep("300 millis")
        yield* tenancy.closeIdleConnections({ idleFor: 0 })
        yield* store.flush

        const events = yield* obs<{ project_id: string; event_type: string; severity: string }>`
          select project_id, event_type, severity from platform.database_connection_logs order by id`
        const of = (project: string) => events.filter((e) => e.project_id === project).map((e) => e.event_type)
        assert.includeMembers(of("rec"), ["pool_created", "health_changed", "pool_closed"])
        // (A project with an open breaker is not evicted as idle: its pool stays, so no pool_closed for it.)
        assert.includeMembers(of("gone"), ["pool_created", "circuit_open"])
        assert.strictEqual(events.find((e) => e.event_type === "circuit_open")?.severity, "warning")

        const [health] = yield* obs<{ health_status: string }>`
          select health_status from platform.databases where project_id = 'rec'`
        assert.strictEqual(health!.health_status, "healthy")

        const metrics = yield* obs<{ metric_name: string; value: number }>`
          select metric_name, max(value) as value from platform.database_metrics where project_id = 'rec'
          group by metric_name`
        const byName = Object.fromEntries(metrics.map((m) => [m.metric_name, m.value]))
        assert.isAtLeast(byName["db_queries_total"] ?? 0, 20)
        assert.property(byName, "db_pool_size")
        assert.property(byName, "circuit_breaker_state")

        const stats = yield* store.stats
        assert.strictEqual(stats.dropped.total, 0)
        assert.isAtLeast(stats.written.events, 4)
        assert.isAtLeast(stats.written.health, 1)
        assert.isAtLeast(stats.written.metrics, 8)
        assert.isBelow(stats.flushes, stats.written.metrics + stats.written.events, "rows went in batches")
      }).pipe(
        Effect.provide(
          Px.stack(
            { url: Redacted.make(db.appUrl), keys: Px.keys(), flushInterval: "100 millis" },
            {
              recorder: { metricsInterval: "100 millis" },
              tenancy: { breakers: { postgres: { attemptTimeout: "500 millis", resetTimeout: "1 minute" } } }
            }
          )
        )
      )
    })
  )

  it.live(
    "the registry, the admin and the recorder are provided one by one; an admin write reaches subscribers at once",
    () =>
      Effect.gen(function* () {
        const db = yield* Px.platformDatabase("store_services")
        yield* Effect.gen(function* () {
          const registry = yield* PlatformRegistry.PlatformRegistry
          const admin = yield* PlatformAdmin.PlatformAdmin
          const recorder = yield* PlatformRecorder.PlatformRecorder
          assert.strictEqual(yield* ProjectRegistry, registry.registry, "ProjectRegistry is the platform registry")
          const announced: Array<string> = []
          const unsubscribe = registry.registry.subscribe((id) => announced.push(id))
          yield* admin.registerProject({ id: "solo", tier: "STARTER" })
          assert.deepStrictEqual(announced, ["solo"], "announced without waiting for a poll (polling is off)")
          unsubscribe()
          assert.strictEqual((yield* registry.registry.lookup(pid("solo"))).tier, "STARTER")
          recorder.logEvent({ projectId: "solo", engine: "postgres", type: "pool_created" })
          yield* recorder.flush
          assert.strictEqual((yield* recorder.stats).written.events, 1)
        }).pipe(
          Effect.provide(PlatformStore.layer({ url: Redacted.make(db.appUrl), keys: Px.keys(), pollInterval: 0 }))
        )
      })
  )

  it.live("a duration option that is not one fails the layers with InvalidConfig naming it", () =>
    Effect.gen(function* () {
      const db = yield* Px.platformDatabase("store_options")
      const base = { url: Redacted.make(db.appUrl), keys: Px.keys() }
      const cases: ReadonlyArray<readonly [string, Partial<PlatformStore.Options>]> = [
        ["platform.connectTimeout", { connectTimeout: -1 }],
        ["platform.pollInterval", { pollInterval: "every so often" as Duration.Input }],
        ["platform.lookupTimeout", { lookupTimeout: 0 }],
        ["platform.cache.ttl", { cache: { ttl: Number.NaN } }],
        ["platform.flushInterval", { flushInterval: -5 }]
      ]
      for (const [field, options] of cases) {
        const error = yield* Effect.flip(Layer.build(PlatformStore.layer({ ...base, ...options })))
        assert.strictEqual(error._tag, "InvalidConfig")
        assert.strictEqual(error._tag === "InvalidConfig" ? error.field : undefined, field)
      }
      const recorder = PlatformStore.layerRecorder({ metricsInterval: "hourly" as Duration.Input }).pipe(
        Layer.provide(Px.stack(base))
      )
      const error = yield* Effect.flip(Layer.build(recorder))
      assert.strictEqual(error._tag === "InvalidConfig" ? error.field : error._tag, "platform.metricsInterval")
    })
  )
})
