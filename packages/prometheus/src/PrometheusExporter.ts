/**
 * The metrics exporter layer: `/metrics` in Prometheus text format, from Effect's metric registry.
 *
 * Effect's `PrometheusMetrics` does the formatting; tenantpool's gauges (active connections, pool sizes, breaker
 * states) are read from live state when the page is rendered, so a scrape always sees current values. Mount the
 * route on the application's router (`layerRoute`), or serve it on a port of its own (`layerServer`), e.g. to
 * keep metrics off the public listener.
 *
 * @since 0.1.0
 */
import { createServer } from "node:http"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as Effect from "effect/Effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import * as Layer from "effect/Layer"
import { PrometheusMetrics } from "effect/observability"
import * as Metrics from "@tenantpool/core/Metrics"

/**
 * Options of the exporter.
 *
 * @category models
 * @since 0.1.0
 */
export interface Options {
  /** Path of the route (default `/metrics`). */
  readonly path?: `/${string}` | undefined
  /** Prefix for every metric name (default none: the spec's names as they are). */
  readonly prefix?: string | undefined
}

/**
 * The `/metrics` route, to merge into the routes given to `HttpRouter.serve`.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerRoute = (options?: Options | undefined): Layer.Layer<never, never, HttpRouter.HttpRouter> =>
  Layer.effectDiscard(
    Effect.gen(function* () {
      const router = yield* HttpRouter.HttpRouter
      const page = Effect.map(render(options), (body) =>
        HttpServerResponse.text(body, { contentType: "text/plain; version=0.0.4; charset=utf-8" })
      )
      yield* router.add("GET", options?.path ?? "/metrics", page)
    })
  )

/**
 * The exporter on a port of its own (its own HTTP server, no request logging).
 *
 * @category layers
 * @since 0.1.0
 */
export const layerServer = (
  options: Options & { readonly port: number; readonly host?: string | undefined }
): Layer.Layer<never, unknown> =>
  HttpRouter.serve(layerRoute(options), { disableLogger: true }).pipe(
    Layer.provide(NodeHttpServer.layer(createServer, { port: options.port, host: options.host ?? "127.0.0.1" }))
  ) as Layer.Layer<never, unknown>

/**
 * The current metrics as Prometheus text (what the route serves): Effect's exposition of the registry, plus the
 * declaration (`# HELP`, `# TYPE`) of any of the eight families that has no series yet, so that every family is
 * there from the first scrape.
 *
 * @category accessors
 * @since 0.1.0
 */
export const render = (options?: Pick<Options, "prefix"> | undefined): Effect.Effect<string> =>
  Effect.map(
    PrometheusMetrics.format(options?.prefix !== undefined ? { prefix: options.prefix } : undefined),
    (text) => {
      // The same prefix as Effect's formatter writes (invalid characters become `_`).
      const prefix = options?.prefix ? `${options.prefix.replace(/[^a-zA-Z0-9_:]/g, "_").replace(/_+/g, "_")}_` : ""
      let out = text
      for (const family of Metrics.families) {
        const name = prefix + family.name
        if (out.includes(`# TYPE ${name} `)) continue
        out += `# HELP ${name} ${family.description}\n# TYPE ${name} ${family.type}\n`
      }
      return out
    }
  )
