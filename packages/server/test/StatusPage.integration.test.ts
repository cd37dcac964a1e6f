/**
 * The status page in a real browser (Debian's Chromium driven by playwright-core) at 1280 px: it renders live
 * projects, their tiers and breaker states and follows changes; it plots every project and target (operations,
 * p99, errors, in flight vs limit) with a breaker timeline; it folds a burst of `overloaded` events into one line
 * whose count is the number of 429s sent, while the breaker opening stays in sight; nothing overflows the page;
 * nothing is loaded from elsewhere.
 * A screenshot is written to test-artifacts/status-page.png.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { chromium, type Page } from "playwright-core"
import * as Servers from "@tenantpool/testing/Servers"
import * as TestServers from "@tenantpool/testing/TestServers"
import { freePort, request, startApp } from "./fixtures/app.ts"

const artifacts = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../test-artifacts")

// Steady traffic on a project while the scope is open, for its plots.
const steadyTraffic = (base: string, project: string) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const state = { stopped: false }
      void (async () => {
        for (let i = 0; !state.stopped; i++) {
          const url = `${base}/projects/${project}/kv/k${i % 20}`
          await (i % 3 === 0 ? request(url, { method: "PUT", body: JSON.stringify({ value: `v${i}` }) }) : request(url))
          await new Promise((r) => setTimeout(r, 15 + (i % 7) * 5))
        }
      })()
      return state
    }),
    (state) => Effect.sync(() => (state.stopped = true))
  )

// Runs in the page; the tests' tsconfig has no DOM types, hence the loose typing.
const inPage = <A>(page: Page, f: () => A) => Effect.promise(() => page.evaluate(f))
const waitInPage = (page: Page, f: () => boolean, timeout = 15_000) =>
  Effect.promise(() => page.waitForFunction(f, undefined, { timeout }))

describe("status page", () => {
  it.live(
    "plots projects and targets, folds repeated events, follows changes and fits 1280 px",
    () =>
      Effect.gen(function* () {
        const dead = yield* Effect.promise(freePort)
        const busy = yield* Servers.acquirePrivate("redis")
        const { base } = yield* startApp({
          projects: [
            { id: "page-pro", tier: "PRO", redis: TestServers.url("redis") },
            { id: "page-free", tier: "FREE", redis: `redis://127.0.0.1:${dead}/0` },
            { id: "page-busy", tier: "STARTER", redis: busy.url },
            { id: "page-idle", tier: "ENTERPRISE", redis: TestServers.url("redis") }
          ],
          tiers: { STARTER: { maxConcurrent: 2, maxQueue: 0 } },
          tenancy: { breakers: { redis: { attemptTimeout: "200 millis" } } },
          // A short window, so the plots fill within the test.
          history: { windowSeconds: 30 }
        })
        yield* steadyTraffic(base, "page-pro")
        const browser = yield* Effect.acquireRelease(
          Effect.promise(() =>
            chromium.launch({
              executablePath: "/usr/bin/chromium",
              args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"]
            })
          ),
          (b) => Effect.promise(() => b.close())
        )
        const page = yield* Effect.promise(() => browser.newPage({ viewport: { width: 1280, height: 900 } }))
        const pageErrors: Array<string> = []
        page.on("pageerror", (e) => pageErrors.push(e.message))
        page.on("console", (m) => m.type() === "error" && pageErrors.push(m.text()))
        // Everything the page needs comes from the server itself (no CDN, no font or script from elsewhere).
        const elsewhere: Array<string> = []
        page.on(
          "request",
          (r) => !r.url().startsWith(`${base}/`) && !r.url().startsWith("data:") && elsewhere.push(r.url())
        )
        yield* Effect.promise(() => page.goto(`${base}/status`))
        yield* Effect.promise(() => page.waitForSelector("#projects td >> text=page-pro"))
        const first = yield* Effect.promise(() => page.locator("#projects tbody").innerText())
        assert.include(first, "page-pro")
        assert.include(first, "PRO")
        assert.include(first, "closed")
        assert.include(yield* Effect.promise(() => page.locator("#idle tbody").innerText()), "page-free")

        // A burst on a project whose server stalls: two run, the rest are refused (no queue), one event each.
        yield* Servers.pause(busy)
        const burst = yield* Effect.promise(() =>
          Promise.all(Array.from({ length: 30 }, () => request(`${base}/projects/page-busy/kv/x`)))
        ).pipe(Effect.ensuring(Servers.resume(busy).pipe(Effect.ignore)))
        const refused = burst.filter((r) => r.status === 429).length
        assert.isAtLeast(refused, 20, `statuses: ${burst.map((r) => r.status).join(",")}`)
        // A project whose database is down: its breaker opens.
        yield* Effect.promise(async () => {
          for (let i = 0; i < 15; i++) await request(`${base}/projects/page-free/kv/a`)
        })

        // The next refreshes show the open breaker, in the table and on the project's timeline.
        yield* waitInPage(page, () =>
          [...(globalThis as any).document.querySelectorAll("#projects tr")].some(
            (tr: any) => tr.textContent?.includes("page-free") === true && tr.querySelector(".state.open") !== null
          )
        )
        const row = yield* Effect.promise(() => page.locator("#projects tr", { hasText: "page-free" }).innerText())
        assert.include(row, "FREE")
        assert.include(row, "open")
        yield* waitInPage(
          page,
          () => (globalThis as any).document.querySelector('[data-project="page-free"] .timeline rect.o') !== null
        )

        // The burst is one line whose count is the number of 429s; the breaker opening is still listed.
        const overloaded = yield* Effect.promise(() =>
          page.locator("#events tr", { hasText: "overloaded" }).filter({ hasText: "page-busy" }).allInnerTexts()
        )
        assert.strictEqual(overloaded.length, 1, overloaded.join("\n"))
        assert.include(overloaded[0]!, `×${refused}`)
        const events = yield* Effect.promise(() => page.locator("#events tbody").innerText())
        assert.include(events, "circuit-open")
        assert.include(events, "pool-created")

        // Plots: four per live project and per target, with data; a minimum of ten seconds of steady traffic.
        yield* waitInPage(
          page,
          () =>
            ((globalThis as any).document
              .querySelector('[data-project="page-pro"] .plot path[fill="none"]')
              ?.getAttribute("d")
              ?.split("L").length ?? 0) >= 10,
          25_000
        )
        const plots = yield* inPage(page, () => {
          const doc = (globalThis as any).document
          const cards = (sel: string) =>
            [...doc.querySelectorAll(sel)].map((c: any) => ({
              name: c.getAttribute("data-project") ?? c.getAttribute("data-target"),
              plots: c.querySelectorAll(".plot svg").length,
              drawn: [...c.querySelectorAll(".plot svg")].filter((s: any) => s.querySelector("path") !== null).length,
              titles: [...c.querySelectorAll(".plot-head > span:first-child")].map((s: any) => s.textContent),
              timelines: c.querySelectorAll(".timeline svg").length,
              limit: c.querySelector(".plot .limit") !== null || /limit/.test(c.textContent)
            }))
          return { projects: cards("#project-plots .card"), targets: cards("#target-plots .card") }
        })
        assert.sameMembers(
          plots.projects.map((c) => c.name),
          ["page-pro", "page-free", "page-busy"]
        )
        assert.strictEqual(plots.targets.length, 3, JSON.stringify(plots.targets.map((t) => t.name)))
        for (const card of [...plots.projects, ...plots.targets]) {
          assert.deepStrictEqual(card.titles, ["ops/s", "p99 latency", "errors/s", "in flight"], card.name)
          assert.strictEqual(card.plots, 4, card.name)
          assert.isAtLeast(card.drawn, 3, `${card.name}: plots with a line`)
          assert.isAtLeast(card.timelines, 1, `${card.name}: a breaker timeline`)
          assert.isTrue(card.limit, `${card.name}: in flight is drawn against a limit`)
        }
        const pro = yield* Effect.promise(() => page.locator('[data-project="page-pro"]').innerText())
        assert.match(pro, /ops\/s\s+[1-9]/, "page-pro's operations/s is not zero")

        // Nothing is cut off at 1280 px: no horizontal scroll, every table and card within the viewport.
        const overflow = yield* inPage(page, () => {
          const g = globalThis as any
          const width = g.innerWidth
          const out: Array<string> = []
          if (g.document.documentElement.scrollWidth > width) out.push(`page ${g.document.documentElement.scrollWidth}`)
          for (const el of g.document.querySelectorAll("table, th, td, .card, .plot, .card-head")) {
            const r = el.getBoundingClientRect()
            if (r.right > width + 0.5) out.push(`${el.tagName}.${el.className} ${Math.round(r.right)}`)
          }
          for (const t of g.document.querySelectorAll("table")) {
            if (t.scrollWidth > t.clientWidth + 1) out.push(`#${t.id} scrolls ${t.scrollWidth} > ${t.clientWidth}`)
          }
          return out
        })
        assert.deepStrictEqual(overflow, [])
        const errorsHeader = yield* Effect.promise(() =>
          page.locator("#projects th", { hasText: "Errors" }).boundingBox()
        )
        assert.isAtMost(errorsHeader!.x + errorsHeader!.width, 1280)
        assert.deepStrictEqual(pageErrors, [])
        assert.deepStrictEqual(elsewhere, [])

        fs.mkdirSync(artifacts, { recursive: true })
        const file = path.join(artifacts, "status-page.png")
        yield* Effect.promise(() => page.screenshot({ path: file, fullPage: true }))
        assert.isAbove(fs.statSync(file).size, 10_000)
      }).pipe(Effect.scoped),
    90_000
  )
})
