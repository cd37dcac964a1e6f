/**
 * A real Prometheus scrapes the example server: every one of the eight metrics arrives with the expected label
 * names, and `promtool check metrics` finds nothing wrong with the exposition.
 */
import { spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as TestServers from "@tenantpool/testing/TestServers"
import { freePort, request, startApp } from "./fixtures/app.ts"

const expected: ReadonlyArray<readonly [name: string, labels: ReadonlyArray<string>]> = [
  ["db_active_connections", ["database_type", "tier"]],
  ["db_pool_size", ["database_type", "tier", "status"]],
  ["circuit_breaker_state", ["database_type", "scope", "tier"]],
  ["db_queries_total", ["database_type", "tier", "status"]],
  ["db_errors_total", ["database_type", "tier", "error_type"]],
  ["circuit_breaker_open_total", ["database_type", "tier", "scope"]],
  ["db_query_duration_seconds_bucket", ["database_type", "tier", "operation", "le"]],
  ["db_connection_acquire_duration_seconds_bucket", ["database_type", "tier", "le"]]
]

// Drives traffic that makes every metric appear: successes, errors, a breaker opening, a dedicated-connection acquire.
const traffic = (base: string) =>
  Effect.promise(async () => {
    await request(`${base}/projects/prom-ok/kv/a`, { method: "PUT", body: JSON.stringify({ value: "1" }) })
    await request(`${base}/projects/prom-ok/kv/a`)
    await request(`${base}/projects/prom-ok/queues/jobs`, { method: "POST", body: JSON.stringify({ value: "job" }) })
    await request(`${base}/projects/prom-ok/queues/jobs?wait=1`)
    for (let i = 0; i < 15; i++) await request(`${base}/projects/prom-dead/kv/a`)
  })

describe("Prometheus", () => {
  it.live("promtool finds nothing wrong with /metrics", () =>
    Effect.gen(function* () {
      const dead = yield* Effect.promise(freePort)
      const { base } = yield* startApp({
        projects: [
          { id: "prom-ok", tier: "PRO", redis: TestServers.url("redis") },
          { id: "prom-dead", tier: "FREE", redis: `redis://127.0.0.1:${dead}/0` }
        ],
        tenancy: { breakers: { redis: { attemptTimeout: "200 millis" } } }
      })
      yield* traffic(base)
      const text = (yield* Effect.promise(() => request(`${base}/metrics`))).body as string
      const check = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" })
      assert.strictEqual(check.error, undefined, "promtool must be installed (npm run services:install -- --with-ui)")
      assert.strictEqual(`${check.stdout}${check.stderr}`.trim(), "", "promtool reported problems")
      assert.strictEqual(check.status, 0)
      for (const [name] of expected) assert.include(text, `${name}{`)
    }).pipe(Effect.scoped)
  )

  it.live(
    "a real Prometheus scrapes all eight metrics with their label names",
    () =>
      Effect.gen(function* () {
        const dead = yield* Effect.promise(freePort)
        const { base } = yield* startApp({
          projects: [
            { id: "prom-ok", tier: "PRO", redis: TestServers.url("redis") },
            { id: "prom-dead", tier: "FREE", redis: `redis://127.0.0.1:${dead}/0` }
          ],
          tenancy: { breakers: { redis: { attemptTimeout: "200 millis" } } }
        })
        yield* traffic(base)
        const promPort = yield* Effect.promise(freePort)
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tenantpool-prometheus-"))
        fs.writeFileSync(
          path.join(dir, "prometheus.yml"),
          [
            "global:",
            "  scrape_interval: 1s",
            "scrape_configs:",
            "  - job_name: tenantpool",
            "    static_configs:",
            `      - targets: ["${base.replace("http://", "")}"]`
          ].join("\n")
        )
        yield* Effect.acquireRelease(
          Effect.sync(() =>
            spawn(
              "prometheus",
              [
                `--config.file=${path.join(dir, "prometheus.yml")}`,
                `--storage.tsdb.path=${path.join(dir, "data")}`,
                `--web.listen-address=127.0.0.1:${promPort}`
              ],
              { stdio: "ignore" }
            )
          ),
          (child) =>
            Effect.promise(
              () =>
                new Promise<void>((resolve) => {
                  child.once("exit", () => resolve())
                  child.kill("SIGTERM")
                  setTimeout(() => resolve(), 5_000).unref()
                })
            ).pipe(Effect.ensuring(Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))))
        )
        const api = `http://127.0.0.1:${promPort}/api/v1`
        const labelsByName = yield* Effect.promise(async () => {
          const deadline = Date.now() + 40_000
          let last = new Map<string, Set<string>>()
          while (Date.now() < deadline) {
            try {
              const match = encodeURIComponent('{__name__=~"db_.*|circuit_.*"}')
              const res = await fetch(`${api}/series?match[]=${match}`)
              const body = (await res.json()) as { data: ReadonlyArray<Record<string, string>> }
              last = new Map()
              for (const series of body.data) {
                const names = last.get(series.__name__!) ?? new Set<string>()
                for (const k of Object.keys(series))
                  if (k !== "__name__" && k !== "job" && k !== "instance") names.add(k)
                last.set(series.__name__!, names)
              }
              if (expected.every(([name]) => last.has(name))) return last
            } catch {
              // Prometheus not up yet
            }
            await new Promise((r) => setTimeout(r, 500))
          }
          return last
        })
        for (const [name, labels] of expected) {
          const got = labelsByName.get(name)
          assert.isDefined(got, `Prometheus has no ${name}`)
          assert.deepStrictEqual([...got!].sort(), [...labels].sort(), `labels of ${name}`)
        }
        const up = yield* Effect.promise(async () => (await (await fetch(`${api}/query?query=up`)).json()) as any)
        assert.strictEqual(up.data.result[0].value[1], "1")
      }).pipe(Effect.scoped),
    60_000
  )
})
