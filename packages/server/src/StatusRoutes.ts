/**
 * `/status` (an HTML page that refreshes itself), `/status.json` (what it shows), `/health` and
 * `/projects/:projectId/health`.
 *
 * The page (`StatusPage.ts`) plots the last minutes per project and per target and lists the folded recent events
 * (both from `History.ts`, kept by `StatusHistory.ts`), the live connections with their pool sizes, breaker states and counters, the tier
 * table and the idle projects. Everything on it comes from the tenancy service's observability API and the
 * routes' own timing; target labels never contain a secret.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { engines, type Engine } from "@tenantpool/core/Engine"
import { Tenancy } from "@tenantpool/core/Tenancy"
import { Tiers } from "@tenantpool/core/Tier"
import { handle } from "./ErrorResponses.ts"
import * as EventLog from "./EventLog.ts"
import * as History from "./History.ts"
import * as Input from "./Input.ts"
import { StatusHistory } from "./StatusHistory.ts"
import * as StatusPage from "./StatusPage.ts"

/**
 * The projects the status page lists even while idle (the demo registers a handful).
 *
 * @category models
 * @since 0.1.0
 */
export interface StatusOptions {
  readonly knownProjects?: ReadonlyArray<{ readonly id: string; readonly tier: string }> | undefined
  readonly engines?: ReadonlyArray<Engine> | undefined
}

/**
 * The status routes.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (options?: StatusOptions | undefined) =>
  HttpRouter.use(
    Effect.fnUntraced(function* (router) {
      const tenancy = yield* Tenancy
      const tiers = yield* Tiers
      const history = yield* StatusHistory
      const served = options?.engines ?? engines
      const snapshot = Effect.gen(function* () {
        const connections = yield* tenancy.connections
        const stats = yield* tenancy.stats
        const live = new Map<string, { id: string; tier: string; engines: Array<unknown> }>()
        for (const c of connections) {
          const entry = live.get(c.projectId) ?? { id: c.projectId, tier: c.tier, engines: [] }
          entry.engines.push({
            engine: c.databaseType,
            target: c.target,
            breaker: c.breaker,
            targetBreaker: c.targetBreaker,
            active: c.active,
            queued: c.queued,
            queryCount: c.queryCount,
            errorCount: c.errorCount,
            pool: c.pool,
            lastUsed: c.lastUsed.toISOString()
          })
          live.set(c.projectId, entry)
        }
        return {
          generatedAt: new Date().toISOString(),
          stats,
          tiers: tiers.all(),
          projects: [...live.values()],
          idle: (options?.knownProjects ?? []).filter((p) => !live.has(p.id)),
          events: EventLog.toJson(history.events, 50),
          history: History.toJson(history)
        }
      })
      yield* router.add(
        "GET",
        "/status.json",
        handle(
          Effect.map(snapshot, (s) => HttpServerResponse.jsonUnsafe(s, { headers: { "cache-control": "no-store" } }))
        )
      )
      yield* router.add("GET", "/status", HttpServerResponse.html(StatusPage.html))
      yield* router.add(
        "GET",
        "/health",
        handle(
          Effect.map(tenancy.stats, (stats) =>
            HttpServerResponse.jsonUnsafe({
              status: "ok",
              engines: served,
              liveProjects: stats.liveProjects,
              inFlight: stats.inFlight
            })
          )
        )
      )
      yield* router.add(
        "GET",
        "/projects/:projectId/health",
        handle(
          Effect.gen(function* () {
            const projectId = yield* Input.projectId
            const results = yield* Effect.forEach(
              served,
              (engine) =>
                tenancy.checkHealth(projectId, engine).pipe(
                  Effect.map((r) => ({
                    engine,
                    healthy: r.healthy,
                    latencyMillis: Math.round(r.latencyMillis * 100) / 100,
                    error: r.error
                  })),
                  Effect.catchTag("EngineNotConfigured", () =>
                    Effect.succeed({ engine, healthy: null, latencyMillis: 0, error: "not configured" })
                  )
                ),
              { concurrency: "unbounded" }
            )
            const healthy = results.every((r) => r.healthy !== false)
            return HttpServerResponse.jsonUnsafe(
              { projectId, healthy, engines: results },
              { status: healthy ? 200 : 503 }
            )
          })
        )
      )
    })
  )
