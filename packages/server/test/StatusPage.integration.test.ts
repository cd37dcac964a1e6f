/**
 * The status page in a real browser (Debian's Chromium driven by playwright-core): it renders live projects, their
 * tiers and breaker states, refreshes itself, and a screenshot is written to test-artifacts/status-page.png.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { chromium } from "playwright-core"
import * as TestServers from "@tenantpool/testing/TestServers"
import { freePort, request, startApp } from "./fixtures/app.ts"

const artifacts = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../test-artifacts")

describe("status page", () => {
  it.live(
    "renders projects, tiers and breaker states, and follows changes",
    () =>
      Effect.gen(function* () {
        const dead = yield* Effect.promise(freePort)
        const { base } = yield* startApp({
          projects: [
            { id: "page-pro", tier: "PRO", redis: TestServers.url("redis") },
            { id: "page-free", tier: "FREE", redis: `redis://127.0.0.1:${dead}/0` },
            { id: "page-idle", tier: "STARTER", redis: TestServers.url("redis") }
          ],
          tenancy: { breakers: { redis: { attemptTimeout: "200 millis" } } }
        })
        yield* Effect.promise(() => request(`${base}/projects/page-pro/kv/a`, { method: "PUT", body: '{"value":"1"}' }))
        const browser = yield* Effect.acquireRelease(
          Effect.promise(() =>
            chromium.launch({
              executablePath: "/usr/bin/chromium",
              args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"]
            })
          ),
          (b) => Effect.promise(() => b.close())
        )
        const page = yield* Effect.promise(() => browser.newPage({ viewport: { width: 1400, height: 900 } }))
        yield* Effect.promise(() => page.goto(`${base}/status`))
        yield* Effect.promise(() => page.waitForSelector("#projects td >> text=page-pro"))
        const first = yield* Effect.promise(() => page.locator("#projects tbody").innerText())
        assert.include(first, "page-pro")
        assert.include(first, "PRO")
        assert.include(first, "closed")
        assert.include(yield* Effect.promise(() => page.locator("#idle tbody").innerText()), "page-free")
        // A project whose database is down appears with an open breaker on the next refresh.
        yield* Effect.promise(async () => {
          for (let i = 0; i < 15; i++) await request(`${base}/projects/page-free/kv/a`)
        })
        yield* Effect.promise(() =>
          page.waitForFunction(
            // Runs in the page; the tests' tsconfig has no DOM types, hence the loose typing.
            () =>
              [...(globalThis as any).document.querySelectorAll("#projects tr")].some(
                (tr: any) => tr.textContent?.includes("page-free") === true && tr.querySelector(".state.open") !== null
              ),
            undefined,
            { timeout: 10_000 }
          )
        )
        const row = yield* Effect.promise(() => page.locator("#projects tr", { hasText: "page-free" }).innerText())
        assert.include(row, "FREE")
        assert.include(row, "open")
        const events = yield* Effect.promise(() => page.locator("#events tbody").innerText())
        assert.include(events, "circuit-open")
        assert.include(events, "pool-created")
        fs.mkdirSync(artifacts, { recursive: true })
        const file = path.join(artifacts, "status-page.png")
        yield* Effect.promise(() => page.screenshot({ path: file, fullPage: true }))
        assert.isAbove(fs.statSync(file).size, 10_000)
      }).pipe(Effect.scoped),
    60_000
  )
})
