// How a server is chosen: an environment URL wins and gets no controls, a URL that does not answer fails without
// echoing its secret, and with nothing available the error says how to get a server.
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { Redis } from "ioredis"
import { freePort } from "../src/internal/ports.ts"
import * as Servers from "../src/Servers.ts"
import * as TestServers from "../src/TestServers.ts"

const ping = (url: string) =>
  Effect.promise(async () => {
    const client = new Redis(url, { maxRetriesPerRequest: 1 })
    try {
      return await client.ping()
    } finally {
      client.disconnect()
    }
  })

describe("resolution", () => {
  it.live("takes an environment URL first, reports it as `env`, and refuses to control it", () =>
    Effect.gen(function* () {
      const shared = TestServers.info("redis")
      const server = yield* Servers.acquire("redis", { env: { TENANTPOOL_REDIS_URL: shared.url } })
      assert.strictEqual(server.source, "env")
      assert.strictEqual(server.url, shared.url)
      assert.strictEqual(server.version, shared.version)
      const refused = yield* Servers.stop(server).pipe(Effect.flip)
      assert.strictEqual(refused._tag, "ServerControlError")
      assert.include(refused.message, 'startPrivateServer("redis")')
      assert.throws(() => server.pid(), /came from the environment/)
    })
  )

  it.live("falls back to the generic variable (REDIS_URL) and never closes an environment server", () =>
    Effect.gen(function* () {
      const url = TestServers.url("redis")
      const server = yield* Effect.promise(() =>
        Servers.resolveServer("redis", { env: { TENANTPOOL_REDIS_URL: " ", REDIS_URL: url } })
      )
      assert.strictEqual(server.source, "env")
      yield* Effect.promise(() => server.close())
      assert.strictEqual(yield* ping(url), "PONG")
    })
  )

  it.live("fails with ServerStartError naming the variable, not the URL, when the server does not answer", () =>
    Effect.gen(function* () {
      const port = yield* Effect.promise(freePort)
      const secret = "CANARY-5f1c-p@ss"
      const error = yield* Servers.acquire("postgres", {
        env: { TENANTPOOL_PG_URL: `postgres://app:${encodeURIComponent(secret)}@127.0.0.1:${port}/app` },
        readyTimeoutMs: 300
      }).pipe(Effect.flip)
      assert.strictEqual(error._tag, "ServerStartError")
      assert.include(error.message, "TENANTPOOL_PG_URL")
      assert.include(error.message, `127.0.0.1:${port}`)
      assert.notInclude(error.message, "CANARY")
      assert.notInclude(error.message, encodeURIComponent(secret))
    })
  )

  it.live("with no URL, no binaries and no Docker, fails with instructions for getting a server", () =>
    Effect.gen(function* () {
      const path = process.env["PATH"]
      // redis-server is only searched for on PATH; an empty PATH hides it.
      process.env["PATH"] = "/nonexistent"
      const result = yield* Servers.acquire("redis", { env: {} }).pipe(
        Effect.result,
        Effect.ensuring(Effect.sync(() => (process.env["PATH"] = path)))
      )
      if (result._tag === "Success") {
        // Where a Docker engine answers, testcontainers is the last resort and must have been used.
        assert.strictEqual(result.success.source, "testcontainers")
        return
      }
      const error = result.failure
      assert.strictEqual(error._tag, "ServerUnavailableError")
      assert.include(error.message, "TENANTPOOL_REDIS_URL, REDIS_URL not set")
      assert.include(error.message, "local binaries: not found")
      assert.include(error.message, "npm run services:install")
      assert.include(error.message, "TENANTPOOL_REDIS_URL=redis://")
      assert.include(error.message, "start a Docker engine")
    })
  )
})
