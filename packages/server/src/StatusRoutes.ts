/**
 * `/status` (an HTML page that refreshes itself), `/status.json` (what it shows), `/health` and
 * `/projects/:projectId/health`.
 *
 * The page lists live projects with their tiers, per-engine pool sizes, breaker states and counters, the tier
 * table, and the most recent events. Everything on it comes from the tenancy service's observability API; target
 * labels never contain a secret.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { engines, type Engine } from "@tenantpool/core/Engine"
import { specName } from "@tenantpool/core/Events"
import { Tenancy } from "@tenantpool/core/Tenancy"
import { Tiers } from "@tenantpool/core/Tier"
import { handle } from "./ErrorResponses.ts"
import * as Input from "./Input.ts"

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
      const served = options?.engines ?? engines
      const snapshot = Effect.gen(function* () {
        const connections = yield* tenancy.connections
        const events = yield* tenancy.recentEvents
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
          events: events
            .slice(-50)
            .reverse()
            .map((e) => ({ ...e, name: specName(e), at: new Date(e.at).toISOString() }))
        }
      })
      yield* router.add(
        "GET",
        "/status.json",
        handle(
          Effect.map(snapshot, (s) => HttpServerResponse.jsonUnsafe(s, { headers: { "cache-control": "no-store" } }))
        )
      )
      yield* router.add("GET", "/status", HttpServerResponse.html(page))
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

const page = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>tenantpool status</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #1d2430; background: #f7f8fa; }
  h1 { font-size: 1.4rem; margin: 0 0 .25rem; } h2 { font-size: 1.05rem; margin: 1.5rem 0 .5rem; }
  table { border-collapse: collapse; background: #fff; box-shadow: 0 1px 2px #0001; min-width: 40rem; }
  th, td { padding: .35rem .7rem; border-bottom: 1px solid #e6e8ec; text-align: left; vertical-align: top; }
  th { background: #eef0f4; font-weight: 600; }
  .state { display: inline-block; padding: 0 .45rem; border-radius: .6rem; font-size: .8rem; font-weight: 600; }
  .closed { background: #d8f3dc; color: #1b5e20; } .open { background: #ffd6d6; color: #9b1c1c; }
  .half-open { background: #fff1c2; color: #7a5b00; } .muted { color: #6b7280; }
  #meta { color: #6b7280; }
</style>
</head>
<body>
<h1>tenantpool</h1>
<div id="meta">loading…</div>
<h2>Live projects</h2>
<table id="projects"><thead><tr><th>Project</th><th>Tier</th><th>Engine</th><th>Target</th><th>Breaker</th><th>Target breaker</th><th>Active</th><th>Queued</th><th>Pool (size / available / pending)</th><th>Queries</th><th>Errors</th></tr></thead><tbody></tbody></table>
<h2>Idle projects</h2>
<table id="idle"><thead><tr><th>Project</th><th>Tier</th></tr></thead><tbody></tbody></table>
<h2>Tiers</h2>
<table id="tiers"><thead><tr><th>Tier</th><th>Min pool</th><th>Max pool</th><th>Max concurrent</th><th>Timeout</th><th>Priority</th></tr></thead><tbody></tbody></table>
<h2>Recent events</h2>
<table id="events"><thead><tr><th>Time</th><th>Event</th><th>Engine</th><th>Project</th><th>Detail</th></tr></thead><tbody></tbody></table>
<script>
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const state = (s) => '<span class="state ' + esc(s) + '">' + esc(s) + '</span>';
const rows = (id, html) => { document.querySelector('#' + id + ' tbody').innerHTML = html || '<tr><td class="muted" colspan="11">none</td></tr>'; };
async function refresh() {
  try {
    const r = await fetch('/status.json', { cache: 'no-store' });
    const s = await r.json();
    document.getElementById('meta').textContent = 'updated ' + new Date(s.generatedAt).toLocaleTimeString() + ' · live projects ' + s.stats.liveProjects + ' · in flight ' + s.stats.inFlight + ' · targets ' + s.stats.liveTargets;
    rows('projects', s.projects.flatMap((p) => p.engines.map((e, i) => '<tr>' +
      (i === 0 ? '<td rowspan="' + p.engines.length + '"><b>' + esc(p.id) + '</b></td><td rowspan="' + p.engines.length + '">' + esc(p.tier) + '</td>' : '') +
      '<td>' + esc(e.engine) + '</td><td class="muted">' + esc(e.target) + '</td><td>' + state(e.breaker) + '</td><td>' + state(e.targetBreaker) + '</td><td>' + e.active + '</td><td>' + e.queued +
      '</td><td>' + (e.pool ? esc(e.pool.size + ' / ' + e.pool.available + ' / ' + e.pool.pending) : '–') + '</td><td>' + e.queryCount + '</td><td>' + e.errorCount + '</td></tr>')).join(''));
    rows('idle', s.idle.map((p) => '<tr><td>' + esc(p.id) + '</td><td>' + esc(p.tier) + '</td></tr>').join(''));
    rows('tiers', Object.entries(s.tiers).map(([n, t]) => '<tr><td>' + esc(n) + '</td><td>' + t.minPool + '</td><td>' + t.maxPool + '</td><td>' + t.maxConcurrent + '</td><td>' + (t.timeoutMillis / 1000) + ' s</td><td>' + esc(t.priority) + '</td></tr>').join(''));
    rows('events', s.events.map((e) => '<tr><td>' + esc(new Date(e.at).toLocaleTimeString()) + '</td><td>' + esc(e.name) + '</td><td>' + esc(e.engine) + '</td><td>' + esc(e.projectId) + '</td><td class="muted">' +
      esc([e.scope, e.target, e.reason, e.healthy === undefined ? '' : (e.healthy ? 'healthy' : 'unhealthy'), e.openForMillis ? 'open ' + e.openForMillis / 1000 + ' s' : ''].filter(Boolean).join(' · ')) + '</td></tr>').join(''));
  } catch (err) {
    document.getElementById('meta').textContent = 'status unavailable: ' + err;
  }
}
refresh();
setInterval(refresh, 2000);
</script>
</body>
</html>
`
