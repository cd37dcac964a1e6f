/**
 * The example multi-tenant server, as layers: the engines, the tenancy service, the routes, `/metrics`, served by
 * Node's HTTP server. This is how an application composes tenantpool: engines and the tenancy service are
 * provided once, outside `HttpRouter.serve`, and each request runs as its project (`tenancy.withProject`).
 *
 * @since 0.1.0
 */
import { createServer } from "node:http"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { HttpRouter } from "effect/http"
import * as Layer from "effect/Layer"
import type { Engine } from "@tenantpool/core/Engine"
import type { ProjectRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import * as Tier from "@tenantpool/core/Tier"
import * as PrometheusExporter from "@tenantpool/prometheus/PrometheusExporter"
import * as MongoEngine from "@tenantpool/mongodb/MongoEngine"
import * as PgEngine from "@tenantpool/pg/PgEngine"
import * as RedisEngine from "@tenantpool/redis/RedisEngine"
import type * as History from "./History.ts"
import * as MongoRoutes from "./MongoRoutes.ts"
import * as PgRoutes from "./PgRoutes.ts"
import * as RedisRoutes from "./RedisRoutes.ts"
import * as Routing from "./Routing.ts"
import * as StatusHistory from "./StatusHistory.ts"
import * as StatusRoutes from "./StatusRoutes.ts"

/**
 * Options of the server.
 *
 * @category models
 * @since 0.1.0
 */
export interface Options {
  readonly port: number
  readonly host?: string | undefined
  readonly tenancy?: Tenancy.Options | undefined
  readonly tiers?: Partial<Record<Tier.TierName, Tier.TierOverride>> | undefined
  readonly knownProjects?: ReadonlyArray<{ readonly id: string; readonly tier: string }> | undefined
  /** Log every request (default false). */
  readonly requestLog?: boolean | undefined
  /** The status page's window (default: three minutes, at most 50 projects and 20 targets). */
  readonly history?: Omit<History.HistoryOptions, "targetLimits"> | undefined
}

const served: ReadonlyArray<Engine> = ["redis", "postgres", "mongodb"]

/**
 * Each engine's shared budget per target (operations in flight at once from this process): the engines' own
 * defaults (Redis 1,000; PostgreSQL 100 connections × 32 multiplexed; MongoDB its pool of 100), set explicitly so
 * the status page can draw them as the targets' limit.
 *
 * @category constants
 * @since 0.1.0
 */
export const targetCapacity: Readonly<Record<Engine, number>> = { redis: 1000, postgres: 3200, mongodb: 100 }

/**
 * The routes, to be served (needs the engines and the tenancy service).
 *
 * @category layers
 * @since 0.1.0
 */
export const routes = (options: Pick<Options, "knownProjects">) =>
  Layer.mergeAll(
    RedisRoutes.layer,
    PgRoutes.layer,
    MongoRoutes.layer,
    StatusRoutes.layer({ knownProjects: options.knownProjects, engines: served }),
    PrometheusExporter.layerRoute()
  ).pipe(
    // Every route is recorded in the index as it is added, so 405 answers know each path's methods.
    Layer.provide(Routing.layerIndexed),
    Layer.merge(Routing.layerFallback),
    Layer.provide(Routing.layerIndex)
  )

/**
 * The engines over a tenancy service (the application's shared state).
 *
 * @category layers
 * @since 0.1.0
 */
export const engines = (options: Pick<Options, "tenancy" | "tiers">) =>
  Layer.mergeAll(
    RedisEngine.layer({ targetCapacity: targetCapacity.redis }),
    PgEngine.layer({ targetCapacity: targetCapacity.postgres }),
    MongoEngine.layer({ targetCapacity: targetCapacity.mongodb })
  ).pipe(Layer.provideMerge(Tenancy.layer(options.tenancy)), Layer.provideMerge(Tier.layer(options.tiers)))

/**
 * The whole server: routes served on `port`; engines, tenancy and the status page's history provided once. Needs a
 * `ProjectRegistry`.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (options: Options): Layer.Layer<never, unknown, ProjectRegistry> =>
  HttpRouter.serve(routes(options), {
    disableLogger: options.requestLog !== true,
    routerConfig: { maxParamLength: Routing.maxParamLength }
  }).pipe(
    Layer.provide(StatusHistory.layer({ ...options.history, targetLimits: targetCapacity })),
    Layer.provide(engines(options)),
    Layer.provide(
      NodeHttpServer.layer(
        () => Routing.withJsonClientErrors(createServer({ maxHeaderSize: Routing.maxHeaderBytes })),
        {
          port: options.port,
          host: options.host ?? "127.0.0.1"
        }
      )
    )
  ) as Layer.Layer<never, unknown, ProjectRegistry>
