/**
 * The README's first command, `npm install && npm start`, in a fresh clone: the demo comes up and answers.
 * (Servers come from the harness through TENANTPOOL_*_URL, as the README allows, so the test does not start a
 * second set.)
 */
import { spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as TestServers from "@tenantpool/testing/TestServers"
import { freePort, request } from "./fixtures/app.ts"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..")

describe("npm start", () => {
  it.live(
    "works in a fresh clone and serves /health, the API, /metrics and /status",
    () =>
      Effect.gen(function* () {
        const dir = yield* Effect.acquireRelease(
          Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "tenantpool-clone-"))),
          (d) => Effect.sync(() => fs.rmSync(d, { recursive: true, force: true }))
        )
        const clone = spawnSync("git", ["clone", "--quiet", "--depth", "1", `file://${root}`, dir], {
          encoding: "utf8"
        })
        assert.strictEqual(clone.status, 0, clone.stderr)
        const install = spawnSync("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline"], {
          cwd: dir,
          encoding: "utf8",
          timeout: 240_000
        })
        assert.strictEqual(install.status, 0, `npm install failed:\n${install.stderr.slice(-2000)}`)
        const port = yield* Effect.promise(freePort)
        const output: Array<string> = []
        const child = yield* Effect.acquireRelease(
          Effect.sync(() => {
            const c = spawn("npm", ["start", "--", "--port", String(port), "--exit-after", "120"], {
              cwd: dir,
              env: {
                ...process.env,
                TENANTPOOL_PG_URL: TestServers.url("postgres"),
                TENANTPOOL_REDIS_URL: TestServers.url("redis"),
                TENANTPOOL_MONGODB_URL: TestServers.url("mongodb")
              },
              detached: true
            })
            c.stdout.on("data", (d: Buffer) => output.push(d.toString()))
            c.stderr.on("data", (d: Buffer) => output.push(d.toString()))
            return c
          }),
          (c) =>
            Effect.sync(() => {
              try {
                process.kill(-c.pid!, "SIGINT")
              } catch {
                // already gone
              }
            })
        )
        const base = `http://127.0.0.1:${port}`
        const health = yield* Effect.promise(async () => {
          const deadline = Date.now() + 60_000
          while (Date.now() < deadline && child.exitCode === null) {
            try {
              const r = await request(`${base}/health`)
              if (r.status === 200) return r
            } catch {
              // not listening yet
            }
            await new Promise((resolve) => setTimeout(resolve, 250))
          }
          return undefined
        })
        assert.isDefined(health, `no /health within 60 s:\n${output.join("")}`)
        assert.strictEqual(health!.body.status, "ok")
        const printed = output.join("")
        for (const url of ["/health", "/metrics", "/status"]) assert.include(printed, `${base}${url}`)
        const put = yield* Effect.promise(() =>
          request(`${base}/projects/acme/kv/hello`, { method: "PUT", body: JSON.stringify({ value: "world" }) })
        )
        assert.strictEqual(put.status, 200)
        assert.deepStrictEqual((yield* Effect.promise(() => request(`${base}/projects/acme/kv/hello`))).body, {
          key: "hello",
          value: "world"
        })
        assert.include(printed, "No authentication")
        // PostgreSQL as the project's own role (the operator model), not the administrator.
        const item = yield* Effect.promise(() =>
          request(`${base}/projects/acme/items`, { method: "POST", body: JSON.stringify({ name: "widget" }) })
        )
        assert.strictEqual(item.status, 201, JSON.stringify(item.body))
        yield* Effect.sleep("500 millis")
        assert.notInclude(output.join(""), "a tenant should not have", "the engine's role check found nothing wrong")
        assert.include((yield* Effect.promise(() => request(`${base}/metrics`))).body, "db_queries_total")
        assert.strictEqual((yield* Effect.promise(() => request(`${base}/status`))).status, 200)
      }).pipe(Effect.scoped),
    300_000
  )
})
