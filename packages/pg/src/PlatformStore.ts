/**
 * The platform store: one connection pool to the platform database (the one holding the `platform` schema) and the
 * three services on it, composed into one layer.
 *
 * - `PlatformRegistry`: the project registry read from `platform.projects` and `platform.databases` (provided as
 *   `ProjectRegistry` for `Tenancy.layer`), cached, polled for changes made elsewhere.
 * - `PlatformAdmin`: the writes (projects, encrypted connection strings, removals, key rotation), announced to the
 *   registry at once.
 * - `PlatformRecorder`: metrics, events and health written in batches from a bounded queue; it never blocks a
 *   tenant's statement, and drops and counts what does not fit.
 *
 * `PlatformStore` is the three behind one service, as before the split; new code can ask for the one it needs.
 * Every background fiber (the registry's poller, the recorder's flusher, `layerRecorder`'s subscription and
 * sampler) belongs to the layer's scope: closing it stops them, and the recorder writes what it holds first. See
 * `docs/architecture.md`.
 *
 * Connection strings are never logged, never part of an error and never returned in plain text: errors name the
 * project, the engine and the key id only.
 *
 * @since 0.1.0
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Reactivity from "effect/reactivity/Reactivity"
import type * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import type { SqlError } from "effect/sql/SqlError"
import * as Durations from "@tenantpool/core/Durations"
import type { InvalidConfig } from "@tenantpool/core/Errors"
import { ProjectRegistry } from "@tenantpool/core/Registry"
import type { Tenancy } from "@tenantpool/core/Tenancy"
import * as PlatformAdmin from "./PlatformAdmin.ts"
import * as PlatformRecorder from "./PlatformRecorder.ts"
import * as PlatformRegistry from "./PlatformRegistry.ts"

// The models, metrics and error of the three services, under the names this module has always exported.
export { generateKey } from "./PlatformAdmin.ts"
export {
  bufferedItems,
  droppedTotal,
  type EventRecord,
  type HealthRecord,
  type MetricSample,
  type WriterStats
} from "./PlatformRecorder.ts"
export { PlatformStoreError } from "./PlatformRegistry.ts"

/**
 * Options of the platform store: the platform database's connection, and the options of the three services.
 *
 * @category models
 * @since 0.1.0
 */
export interface Options extends PlatformRegistry.Options, PlatformAdmin.Options, PlatformRecorder.Options {
  /** The platform database (the one holding the `platform` schema). */
  readonly url: Redacted.Redacted<string>
  /** Connections to the platform database (default 4). */
  readonly maxConnections?: number | undefined
  /** Connect timeout to the platform database (default 2 seconds). */
  readonly connectTimeout?: Duration.Input | undefined
  /** `application_name` of the store's connections (default `tenantpool:platform`). */
  readonly applicationName?: string | undefined
}

/**
 * Options of `layerRecorder`.
 *
 * @category models
 * @since 0.1.0
 */
export interface RecorderOptions extends PlatformRecorder.TenancyOptions {}

/**
 * The platform store: the registry, the admin and the recorder behind one service.
 *
 * @category services
 * @since 0.1.0
 */
export class PlatformStore extends Context.Service<
  PlatformStore,
  PlatformAdmin.PlatformAdmin["Service"] &
    PlatformRecorder.PlatformRecorder["Service"] & {
      /** The cached registry (also provided as `ProjectRegistry` by the layers). */
      readonly registry: ProjectRegistry["Service"]
      /** Looks for registry changes now (what the poller does every `pollInterval`). */
      readonly refresh: PlatformRegistry.PlatformRegistry["Service"]["refresh"]
    }
>()("@tenantpool/pg/PlatformStore") {}

/**
 * What the layers provide: `PlatformStore`, its three services, and the registry as `ProjectRegistry`.
 *
 * @category models
 * @since 0.1.0
 */
export type Provided =
  | PlatformStore
  | ProjectRegistry
  | PlatformRegistry.PlatformRegistry
  | PlatformAdmin.PlatformAdmin
  | PlatformRecorder.PlatformRecorder

/** The three services, as the layers provide them. */
interface Services {
  readonly registry: PlatformRegistry.PlatformRegistry["Service"]
  readonly admin: PlatformAdmin.PlatformAdmin["Service"]
  readonly recorder: PlatformRecorder.PlatformRecorder["Service"]
}

/** Connects to the platform database and builds the three services on that one pool (scoped). */
const makeServices = Effect.fnUntraced(function* (options: Options) {
  const connectTimeout = yield* Durations.millis("platform.connectTimeout", options.connectTimeout, "2 seconds")
  const sql = yield* PgClient.make({
    url: options.url,
    maxConnections: options.maxConnections ?? 4,
    applicationName: options.applicationName ?? "tenantpool:platform",
    connectTimeout
  })
  const registry = yield* PlatformRegistry.make(sql, options)
  const admin = yield* Effect.provideService(
    PlatformAdmin.make(sql, options),
    PlatformRegistry.PlatformRegistry,
    registry
  )
  const recorder = yield* PlatformRecorder.make(sql, options)
  return { registry, admin, recorder } satisfies Services
})

const storeOf = ({ admin, recorder, registry }: Services): PlatformStore["Service"] =>
  PlatformStore.of({
    registry: registry.registry,
    refresh: registry.refresh,
    registerProject: admin.registerProject,
    putDatabase: admin.putDatabase,
    removeDatabase: admin.removeDatabase,
    removeProject: admin.removeProject,
    rotateKeys: admin.rotateKeys,
    recordMetric: recorder.recordMetric,
    logEvent: recorder.logEvent,
    recordHealth: recorder.recordHealth,
    recordEvent: recorder.recordEvent,
    flush: recorder.flush,
    stats: recorder.stats
  })

/**
 * Builds the platform store (scoped: closing it stops the poller and the flusher, and flushes the recorder once
 * more within `flushTimeout`).
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (
  options: Options
): Effect.Effect<PlatformStore["Service"], InvalidConfig | SqlError, Reactivity.Reactivity | Scope.Scope> =>
  Effect.map(makeServices(options), storeOf)

/**
 * The platform store as a layer: provides `PlatformStore`, its three services, and the cached registry as
 * `ProjectRegistry` (for `Tenancy.layer`).
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (options: Options): Layer.Layer<Provided, InvalidConfig | SqlError> =>
  Layer.effectContext(
    Effect.map(makeServices(options), (services) =>
      Context.make(PlatformStore, storeOf(services)).pipe(
        Context.add(ProjectRegistry, services.registry.registry),
        Context.add(PlatformRegistry.PlatformRegistry, services.registry),
        Context.add(PlatformAdmin.PlatformAdmin, services.admin),
        Context.add(PlatformRecorder.PlatformRecorder, services.recorder)
      )
    )
  ).pipe(Layer.provide(Reactivity.layer))

/**
 * The platform store from configuration, e.g.
 * `layerConfig({ url: Config.Redacted("PLATFORM_DATABASE_URL"), keys: Config.Redacted("TENANTPOOL_KEYS") })`.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerConfig = (
  config: Config.Wrap<Options>
): Layer.Layer<Provided, InvalidConfig | SqlError | Config.ConfigError> =>
  Layer.unwrap(Effect.map(Config.unwrap(config), layer))

/**
 * Records the tenancy service's events and samples its per-project counters into the platform schema, through the
 * store's recorder (see `PlatformRecorder.layerTenancy`).
 *
 * @category layers
 * @since 0.1.0
 */
export const layerRecorder = (
  options?: RecorderOptions | undefined
): Layer.Layer<never, InvalidConfig, PlatformStore | Tenancy> =>
  PlatformRecorder.layerTenancy(options).pipe(
    Layer.provide(
      Layer.effect(PlatformRecorder.PlatformRecorder, PlatformStore.useSync(PlatformRecorder.PlatformRecorder.of))
    )
  )
