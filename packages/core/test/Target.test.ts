import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import type { Engine } from "../src/Engine.ts"
import * as Target from "../src/Target.ts"

const canary = "CANARY-7f3e-p@ss/#"
const encoded = encodeURIComponent(canary) // CANARY-7f3e-p%40ss%2F%23
const secretFragments = [canary, encoded, "CANARY", "7f3e", "p@ss", "p%40ss"]

const assertNoSecret = (text: string, context: string) => {
  for (const fragment of secretFragments) assert.notInclude(text, fragment, `${context} leaks the password`)
}

const parse = (engine: Engine, url: string, options?: Target.ParseOptions) => Target.parse(engine, url, options)
const fail = (engine: Engine, url: string, options?: Target.ParseOptions) =>
  Effect.flip(Target.parse(engine, url, options))

describe("Target", () => {
  describe("postgres", () => {
    it.effect("fills defaults and lower-cases the host", () =>
      Effect.gen(function* () {
        const t = yield* parse("postgres", "postgres://alice@DB.Example.COM/app")
        assert.strictEqual(t.engine, "postgres")
        assert.strictEqual(t.host, "db.example.com")
        assert.strictEqual(t.port, 5432)
        assert.strictEqual(t.database, "app")
        assert.strictEqual(t.user, "alice")
        assert.isUndefined(t.password)
        assert.strictEqual(t.tls, "prefer")
        assert.strictEqual(t.label, "postgres://alice@db.example.com:5432/app")
        assert.strictEqual((yield* parse("postgres", "postgresql://bob@h")).database, "bob")
        assert.strictEqual((yield* parse("postgres", "postgres://h")).database, "postgres")
        assert.strictEqual((yield* parse("postgres", "postgres://h?dbname=other")).database, "other")
        assert.strictEqual((yield* parse("postgres", "POSTGRES://h:6543/x")).port, 6543)
      })
    )

    it.effect("reads sslmode", () =>
      Effect.gen(function* () {
        const mode = (q: string) => Effect.map(parse("postgres", `postgres://h/db${q}`), (t) => t.tls)
        assert.strictEqual(yield* mode(""), "prefer")
        assert.strictEqual(yield* mode("?sslmode=disable"), "disable")
        assert.strictEqual(yield* mode("?sslmode=allow"), "prefer")
        assert.strictEqual(yield* mode("?sslmode=require"), "require")
        assert.strictEqual(yield* mode("?sslmode=verify-ca"), "verify-ca")
        assert.strictEqual(yield* mode("?sslmode=verify-full"), "verify-full")
        const error = yield* fail("postgres", "postgres://h/db?sslmode=sometimes")
        assert.strictEqual(error.field, "query.sslmode")
      })
    )

    it.effect("takes the password from the user info or from the query, never into params", () =>
      Effect.gen(function* () {
        const a = yield* parse("postgres", `postgres://u:${encoded}@h/db`)
        const b = yield* parse("postgres", `postgres://u@h/db?password=${encoded}`)
        assert.strictEqual(Redacted.value(a.password!), canary)
        assert.strictEqual(Redacted.value(b.password!), canary)
        assert.deepStrictEqual(b.params, {})
        assert.strictEqual(a.key, b.key)
      })
    )
  })

  describe("redis", () => {
    it.effect("fills defaults; rediss means verified TLS", () =>
      Effect.gen(function* () {
        const t = yield* parse("redis", "redis://Cache.Internal")
        assert.deepStrictEqual(
          [t.host, t.port, t.database, t.tls, t.user],
          ["cache.internal", 6379, "0", "disable", undefined]
        )
        const s = yield* parse("redis", `rediss://:${encoded}@cache.internal:6380/07`)
        assert.deepStrictEqual([s.port, s.database, s.tls, s.user], [6380, "7", "verify-full", undefined])
        assert.strictEqual(Redacted.value(s.password!), canary)
        assert.strictEqual((yield* parse("redis", "redis://h?db=4")).database, "4")
        assert.strictEqual((yield* fail("redis", "redis://h/abc")).field, "database")
      })
    )
  })

  describe("mongodb", () => {
    it.effect("fills defaults, parses a seed list and mongodb+srv", () =>
      Effect.gen(function* () {
        const t = yield* parse("mongodb", "mongodb://u:p@A.example.com,b.example.com:27018/app?replicaSet=rs0")
        assert.deepStrictEqual(t.hosts, [
          { host: "a.example.com", port: 27017 },
          { host: "b.example.com", port: 27018 }
        ])
        assert.strictEqual(t.host, "a.example.com")
        assert.strictEqual(t.database, "app")
        assert.strictEqual(t.tls, "disable")
        assert.deepStrictEqual(t.params, { replicaSet: "rs0" })
        assert.strictEqual(t.label, "mongodb://u@a.example.com:27017,b.example.com:27018/app")
        assert.strictEqual((yield* parse("mongodb", "mongodb://h")).database, "test")
        const srv = yield* parse("mongodb", "mongodb+srv://u:p@Cluster0.example.net/app")
        assert.deepStrictEqual([srv.host, srv.port, srv.tls], ["cluster0.example.net", 27017, "verify-full"])
        assert.strictEqual((yield* parse("mongodb", "mongodb://h/db?tls=true")).tls, "verify-full")
        assert.strictEqual((yield* parse("mongodb", "mongodb://h/db?tls=true&tlsInsecure=true")).tls, "require")
        assert.strictEqual((yield* fail("mongodb", "mongodb+srv://h:27017/db")).field, "host")
        assert.strictEqual((yield* fail("mongodb", "mongodb+srv://a.example.com,b.example.com/db")).field, "host")
        assert.strictEqual((yield* fail("mongodb", "mongodb://h/bad.name")).field, "database")
      })
    )
  })

  describe("keys (who shares connections)", () => {
    const key = (engine: Engine, url: string) => Effect.map(parse(engine, url), (t) => t.key)

    it.effect("two projects on the same server, user and database share a key", () =>
      Effect.gen(function* () {
        assert.strictEqual(
          yield* key("postgres", "postgres://app:pw@DB.example.com/main?sslmode=require&application_name=x"),
          yield* key("postgres", "postgres://app:pw@db.example.com:5432/main?application_name=x&sslmode=require")
        )
        assert.strictEqual(
          yield* key("postgres", "postgres://app:pw@db.example.com/main"),
          yield* key("postgres", "postgresql://app:pw@db.example.com/main"),
          "postgres:// and postgresql:// are the same server"
        )
        assert.strictEqual(yield* key("redis", "redis://:pw@cache:6379/0"), yield* key("redis", "redis://:pw@CACHE/0"))
      })
    )

    it.effect("a different password, user, database, port or host gives a different key", () =>
      Effect.gen(function* () {
        const base = yield* key("postgres", "postgres://app:pw1@db.example.com/main")
        for (const other of [
          "postgres://app:pw2@db.example.com/main",
          "postgres://app2:pw1@db.example.com/main",
          "postgres://app:pw1@db.example.com/other",
          "postgres://app:pw1@db.example.com:5433/main",
          "postgres://app:pw1@db2.example.com/main",
          "postgres://app:pw1@db.example.com/main?sslmode=verify-full"
        ]) {
          assert.notStrictEqual(yield* key("postgres", other), base, other)
        }
        assert.notStrictEqual(yield* key("redis", "redis://:a@cache/0"), yield* key("redis", "redis://:b@cache/0"))
        assert.notStrictEqual(yield* key("redis", "redis://cache/0"), yield* key("redis", "redis://cache/1"))
      })
    )

    it.effect("MongoDB projects on one server share a key whatever their database", () =>
      Effect.gen(function* () {
        const a = yield* parse("mongodb", "mongodb://u:p@mongo.internal/project_a")
        const b = yield* parse("mongodb", "mongodb://u:p@mongo.internal/project_b")
        assert.strictEqual(a.key, b.key)
        assert.notStrictEqual(a.database, b.database)
        assert.notStrictEqual(a.key, (yield* parse("mongodb", "mongodb://u:q@mongo.internal/project_a")).key)
      })
    )
  })

  describe("errors name the field and never contain the password", () => {
    const cases: ReadonlyArray<readonly [Engine, string, string]> = [
      ["postgres", "", "url"],
      ["postgres", `postgres://u:${encoded}@db.example.com/app `, "url"],
      ["postgres", `postgres://u:${encoded}@db.example.com/app#frag`, "url"],
      ["postgres", `postgres://u:${canary}@db.example.com/app`, "url"],
      ["postgres", `mysql://u:${encoded}@db.example.com/app`, "scheme"],
      ["postgres", `u:${encoded}@db.example.com/app`, "scheme"],
      ["redis", `postgres://u:${encoded}@db.example.com/app`, "scheme"],
      ["postgres", `postgres://u:${encoded}@/app`, "host"],
      ["postgres", `postgres://u:${encoded}@bad_host!/app`, "host"],
      ["postgres", `postgres://u:${encoded}@a.example.com,b.example.com/app`, "host"],
      ["postgres", `postgres://u:${encoded}@db.example.com:99999/app`, "port"],
      ["postgres", `postgres://u:${encoded}@db.example.com:http/app`, "port"],
      ["postgres", `postgres://u:${encoded}@db.example.com/${"d".repeat(64)}`, "database"],
      ["postgres", `postgres://u:${encoded}@db.example.com/app?sslmode=${encoded}`, "query.sslmode"],
      ["postgres", `postgres://u:${encoded}@db.example.com/app?password=${encoded}`, "query.password"],
      ["postgres", `postgres://u:${encoded}@db.example.com/app?a=1&a=2`, "query.a"],
      ["postgres", `postgres://u:CANARY-7f3e-%ZZ@db.example.com/app`, "password"],
      ["postgres", `postgres://%ZZ:${encoded}@db.example.com/app`, "user"],
      ["redis", `redis://:${encoded}@cache.internal/notanumber`, "database"],
      ["mongodb", `mongodb://u:${encoded}@mongo.internal/bad$name`, "database"],
      ["mongodb", `mongodb+srv://u:${encoded}@mongo.internal:27017/app`, "host"],
      ["postgres", `postgres://u:${encoded}@db.example.com/app`, "tls"] // with tlsPolicy verify-remote
    ]
    for (const [engine, url, field] of cases) {
      it.effect(`${engine} ${field}: ${url.replace(encoded, "<pw>").replace(canary, "<pw>").slice(0, 60)}`, () =>
        Effect.gen(function* () {
          const options: Target.ParseOptions | undefined = field === "tls" ? { tlsPolicy: "verify-remote" } : undefined
          const error = yield* fail(engine, url, options)
          assert.strictEqual(error._tag, "InvalidConnectionString")
          assert.strictEqual(error.field, field)
          assert.include(error.message, `(${field})`)
          assertNoSecret(error.message, "message")
          assertNoSecret(String(error), "String(error)")
          assertNoSecret(JSON.stringify(error), "JSON.stringify(error)")
          assertNoSecret(error.stack ?? "", "stack")
          // The same through parseSync and a Redacted input.
          const thrown = (() => {
            try {
              Target.parseSync(engine, Redacted.make(url), options)
            } catch (e) {
              return e
            }
          })()
          assert.strictEqual((thrown as { field?: string } | undefined)?.field, field)
          assertNoSecret(String(thrown), "parseSync")
        })
      )
    }
  })

  it.effect("a parsed target never shows the password", () =>
    Effect.gen(function* () {
      for (const [engine, url] of [
        ["postgres", `postgres://u:${encoded}@db.example.com/app?sslmode=require`],
        ["postgres", `postgres://u@db.example.com/app?password=${encoded}`],
        ["redis", `rediss://default:${encoded}@cache.internal:6380/2`],
        ["mongodb", `mongodb://u:${encoded}@a.example.com,b.example.com/app?authSource=admin`],
        ["mongodb", `mongodb+srv://u:${encoded}@cluster0.example.net/app`]
      ] as const) {
        const t = yield* parse(engine, url)
        assert.strictEqual(Redacted.value(t.password!), canary)
        assert.strictEqual(String(t.password), "<redacted>")
        assert.strictEqual(String(t.url), "<redacted>")
        assertNoSecret(t.label, "label")
        assertNoSecret(t.key, "key")
        assertNoSecret(JSON.stringify(t), "JSON.stringify(target)")
        assertNoSecret(JSON.stringify(t.params), "params")
      }
    })
  )

  describe("tlsPolicy verify-remote", () => {
    const options: Target.ParseOptions = { tlsPolicy: "verify-remote" }

    it.effect("rejects a non-loopback host without verify-full", () =>
      Effect.gen(function* () {
        for (const [engine, url] of [
          ["postgres", "postgres://u@db.example.com/app"],
          ["postgres", "postgres://u@db.example.com/app?sslmode=require"],
          ["postgres", "postgres://u@10.0.0.5/app?sslmode=verify-ca"],
          ["redis", "redis://cache.internal"],
          ["mongodb", "mongodb://mongo.internal/app"],
          ["mongodb", "mongodb://mongo.internal/app?tls=true&tlsAllowInvalidCertificates=true"],
          ["mongodb", "mongodb://localhost,mongo.internal/app"]
        ] as const) {
          const error = yield* fail(engine, url, options)
          assert.strictEqual(error.field, "tls", url)
          assert.include(error.message, "verify-full")
        }
      })
    )

    it.effect("accepts verify-full anywhere and any mode on loopback", () =>
      Effect.gen(function* () {
        for (const [engine, url] of [
          ["postgres", "postgres://u@db.example.com/app?sslmode=verify-full"],
          ["postgres", "postgres://u@127.0.0.1/app"],
          ["postgres", "postgres://u@localhost/app?sslmode=disable"],
          ["postgres", "postgres://u@[::1]:5432/app"],
          ["redis", "rediss://cache.internal"],
          ["redis", "redis://127.0.0.1:6379"],
          ["mongodb", "mongodb+srv://cluster0.example.net/app"],
          ["mongodb", "mongodb://mongo.internal/app?tls=true"]
        ] as const) {
          yield* parse(engine, url, options)
        }
        // Without the policy, a plain remote target is fine.
        yield* parse("postgres", "postgres://u@db.example.com/app")
      })
    )
  })
})
