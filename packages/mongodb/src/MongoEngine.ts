/**
 * MongoDB per project on the official driver, through the tenantpool guard.
 *
 * Connections (see docs/architecture.md): one `MongoClient` per target (server, user and credentials), created by
 * the first project that uses it and closed when the last one is freed; each project works in its own database on it
 * (`client.db(target.database)`). The pool is sized from the tiers of the projects on the target:
 * `maxPoolSize` is the largest `maxPool` among them, capped by `Options.maxPoolSize`. The driver cannot resize a
 * live pool, so when a larger tier arrives the target gets a new client for new work and the old one closes once
 * the work it started has drained (it never shrinks while in use: idle connections go after `maxIdleTime`).
 * `minPoolSize` is 0 by default: warm connections per target multiply with targets, a pool with a minimum refills
 * itself in the background and right after a pool clear (a reconnect storm against a recovering server), and a
 * connection costs one handshake when it is needed. Replaced clients are closed by fibers in the layer's scope
 * (`internal/targetClients.ts`): closing the layer closes them, or interrupts what is left of that work.
 *
 * Timeouts become server-side limits: reads and aggregations carry `maxTimeMS` equal to the attempt's time
 * (the engine's attempt timeout, or the tier's deadline when that is shorter), so a query the guard abandons also
 * stops on the server. The driver's `timeoutMS` (CSOT) has no effect in driver 7 and is not used. Every driver call
 * gets an `AbortSignal` that the engine aborts when the guard abandons the attempt: a call still waiting for a
 * connection or for server selection is dropped without being sent. Aborting a call whose reply is on its way closes
 * that connection, which is why it happens only on abandonment. A cursor stream closes its cursor (killCursors)
 * however it stops, once no batch of it is on its way (`internal/cursors.ts`).
 *
 * Retries: reads are retried by the guard only (`retryReads: false`), so each read retry is an attempt with its own
 * timeout, breaker accounting and metrics, and retries do not multiply. Writes keep the driver's retryable writes
 * (`retryWrites`, on by default): on a replica set the driver retries a write once with the same transaction number,
 * which the server applies at most once, something the guard cannot do; the guard itself never retries a write
 * unless the caller declares it idempotent. On a standalone server (FerretDB included) retryable writes are inert.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import * as Layer from "effect/Layer"
import type * as Schema from "effect/Schema"
import { type Document, MongoClient as DriverClient, type MongoClientOptions } from "mongodb"
import type { ProjectHandle } from "@tenantpool/core/CurrentProject"
import * as Durations from "@tenantpool/core/Durations"
import type { Classification, PoolStats } from "@tenantpool/core/Engine"
import { type GuardError, InvalidConfig } from "@tenantpool/core/Errors"
import { Tenancy } from "@tenantpool/core/Tenancy"
import { Tiers } from "@tenantpool/core/Tier"
import { bind, type Binding, ping } from "./internal/binding.ts"
import type { Handle } from "./internal/calls.ts"
import { Targets } from "./internal/targetClients.ts"
import { transaction } from "./internal/transactions.ts"
import { Views } from "./internal/views.ts"
import type { DocumentSchema, MongoCollection, MongoTransaction } from "./MongoCollection.ts"
import { classify, fromUnknown, MongoError } from "./MongoError.ts"
import type { TransactionOptions } from "./MongoOptions.ts"

/**
 * The collection models, declared in `MongoCollection.ts` (the engine's internals use them too) and exported here
 * as they always were.
 *
 * @since 0.1.0
 */
export type {
  DocumentSchema,
  MongoCollection,
  MongoTransaction,
  TransactionCollection,
  WriteGuardOptions
} from "./MongoCollection.ts"

/**
 * Options of the MongoDB engine.
 *
 * @category models
 * @since 0.1.0
 */
export interface Options {
  /** Upper bound of a target's pool, whatever the tiers on it ask for (default 100). */
  readonly maxPoolSize?: number | undefined
  /** Connections a target's pool keeps open (default 0; see the module documentation). */
  readonly minPoolSize?: number | undefined
  /** How long an unused pooled connection is kept (default 1 minute; 0: no limit). */
  readonly maxIdleTime?: Duration.Input | undefined
  /** Connections a pool may be establishing at once (default 2, the CMAP default: no reconnect storms). */
  readonly maxConnecting?: number | undefined
  /** How long a driver call may wait for a pooled connection before failing (default 5 seconds; 0: no limit). */
  readonly waitQueueTimeout?: Duration.Input | undefined
  /** How long a driver call may wait for a usable server (default 5 seconds). */
  readonly serverSelectionTimeout?: Duration.Input | undefined
  /** Bound of establishing one connection, handshake included (default 5 seconds; 0: no limit). */
  readonly connectTimeout?: Duration.Input | undefined
  /** How often the driver checks each server (default: the driver's, 10 seconds). */
  readonly heartbeatFrequency?: Duration.Input | undefined
  /** The driver's retryable writes (default: the connection string's setting, else the driver's default, on). */
  readonly retryWrites?: boolean | undefined
  /** Operations in flight per target from this process, across projects (default: `maxPoolSize`). */
  readonly targetCapacity?: number | undefined
  /** The application name servers see (default `tenantpool`). */
  readonly appName?: string | undefined
  /** Bound of `healthCheck` (default 2 seconds). */
  readonly healthCheckTimeout?: Duration.Input | undefined
  /**
   * How long a replaced client may keep serving the work it started before it is closed (default 10 minutes; 0: it
   * is closed at once).
   */
  readonly retireTimeout?: Duration.Input | undefined
}

/**
 * Makes a driver client. The engine passes the connection string (the driver needs it: it is the one place the
 * secret goes) and its pool options; a factory for tests can add monitoring.
 *
 * @category models
 * @since 0.1.0
 */
export type ClientFactory = (url: string, options: MongoClientOptions) => DriverClient

/**
 * Pool statistics of a project's MongoDB target, in the spec's shape (`size`, `available`, `pending`, from the
 * driver's CMAP events) with the parts that make them up.
 *
 * @category models
 * @since 0.1.0
 */
export interface MongoPoolStats extends PoolStats {
  /** The pool limit of the target's current client. */
  readonly maxPoolSize: number
  readonly minPoolSize: number
  readonly checkedOut: number
  /** Cursors open on the target's clients (streams, and arrays being read). */
  readonly cursors: number
  /** Live clients: 1, or more while a replaced one drains. */
  readonly clients: number
  /** Projects bound to the target in this process. */
  readonly projects: number
  /** Times a pool was cleared (server marked unknown after a network error or a failed check). */
  readonly poolCleared: number
  /** Connection checkouts that failed (wait-queue timeout, connection error, pool closed). */
  readonly checkoutFailed: number
}

type Fail = MongoError | GuardError

/**
 * The MongoDB engine: every operation runs for the current project, in its database, through the guard.
 *
 * @category services
 * @since 0.1.0
 */
export class MongoEngine extends Context.Service<
  MongoEngine,
  {
    readonly handle: Handle
    /** A collection of the current project's database; with a schema, reads decode their results with it. */
    readonly collection: {
      <T extends Document = Document>(name: string): MongoCollection<T>
      <S extends DocumentSchema>(
        name: string,
        schema: S
      ): MongoCollection<S["Encoded"], S["Type"], S["DecodingServices"], Schema.SchemaError>
    }
    /**
     * Runs `body` in a transaction (a session and `withTransaction`, which retries the body on transient
     * transaction errors) as one guarded, non-idempotent operation. Needs a replica set or a sharded cluster: on a
     * standalone server or FerretDB it fails with kind `transactions_unsupported` before starting anything.
     */
    readonly transaction: <A, E, R>(
      body: (tx: MongoTransaction) => Effect.Effect<A, E, R>,
      options?: TransactionOptions
    ) => Effect.Effect<A, E | Fail, R>
    /** `ping` with a short timeout, outside the breakers (it reports the server, not the circuit); never fails. */
    readonly healthCheck: Effect.Effect<boolean>
    /** The current project's pool statistics (its target's, shared with the projects on the same server). */
    readonly poolStats: Effect.Effect<MongoPoolStats, Fail>
  }
>()("@tenantpool/mongodb/MongoEngine") {}

const defaultFactory: ClientFactory = (url, options) => new DriverClient(url, options)

// The driver's own options, durations checked (zero means "no limit" to the driver where it is allowed).
const clientOptions = Effect.fnUntraced(function* (options: Options | undefined) {
  const zero = { allowZero: true }
  const heartbeat = options?.heartbeatFrequency
  return {
    appName: options?.appName ?? "tenantpool",
    maxIdleTimeMS: yield* Durations.millis("mongodb.maxIdleTime", options?.maxIdleTime, "1 minute", zero),
    maxConnecting: options?.maxConnecting ?? 2,
    waitQueueTimeoutMS: yield* Durations.millis(
      "mongodb.waitQueueTimeout",
      options?.waitQueueTimeout,
      "5 seconds",
      zero
    ),
    serverSelectionTimeoutMS: yield* Durations.millis(
      "mongodb.serverSelectionTimeout",
      options?.serverSelectionTimeout,
      "5 seconds"
    ),
    connectTimeoutMS: yield* Durations.millis("mongodb.connectTimeout", options?.connectTimeout, "5 seconds", zero),
    retryReads: false,
    ...(heartbeat !== undefined
      ? { heartbeatFrequencyMS: yield* Durations.millis("mongodb.heartbeatFrequency", heartbeat, heartbeat) }
      : {}),
    ...(options?.retryWrites !== undefined ? { retryWrites: options.retryWrites } : {})
  } satisfies MongoClientOptions
})

const optionNames = [
  "maxPoolSize",
  "minPoolSize",
  "maxIdleTime",
  "maxConnecting",
  "waitQueueTimeout",
  "serverSelectionTimeout",
  "connectTimeout",
  "heartbeatFrequency",
  "retryWrites",
  "targetCapacity",
  "appName",
  "healthCheckTimeout",
  "retireTimeout"
] as const satisfies ReadonlyArray<keyof Options>

// The options, read once into a plain copy and their non-duration fields checked (durations are checked where they
// are read): a wrong type, or a getter or proxy that throws, is an InvalidConfig naming the option.
const readOptions = (input: unknown): Options | InvalidConfig => {
  if (input === undefined) return {}
  if (typeof input !== "object" || input === null) {
    return new InvalidConfig({ field: "mongodb.options", reason: "must be an object" })
  }
  const copy: Record<string, unknown> = {}
  for (const name of optionNames) {
    try {
      copy[name] = (input as Record<string, unknown>)[name]
    } catch {
      return new InvalidConfig({ field: `mongodb.${name}`, reason: "could not be read (a getter or proxy threw)" })
    }
  }
  for (const name of ["maxPoolSize", "minPoolSize", "maxConnecting", "targetCapacity"] as const) {
    const v = copy[name]
    const min = name === "minPoolSize" ? 0 : 1
    if (v !== undefined && !(Number.isSafeInteger(v) && (v as number) >= min)) {
      return new InvalidConfig({ field: `mongodb.${name}`, reason: `must be an integer >= ${min}` })
    }
  }
  if (copy["retryWrites"] !== undefined && typeof copy["retryWrites"] !== "boolean") {
    return new InvalidConfig({ field: "mongodb.retryWrites", reason: "must be a boolean" })
  }
  if (copy["appName"] !== undefined && typeof copy["appName"] !== "string") {
    return new InvalidConfig({ field: "mongodb.appName", reason: "must be a string" })
  }
  return copy as Options
}

/**
 * Registers the MongoDB engine with the tenancy service, with a driver factory (tests pass one that monitors).
 *
 * @category constructors
 * @since 0.1.0
 */
export const makeWith = (factory: ClientFactory, input?: Options | undefined) =>
  Effect.gen(function* () {
    const options = readOptions(input)
    if (options instanceof InvalidConfig) return yield* options
    const tenancy = yield* Tenancy
    const tiers = yield* Tiers
    const cap = Math.max(1, options?.maxPoolSize ?? 100)
    const capacity = options?.targetCapacity ?? cap
    const healthTimeout = yield* Durations.millis(
      "mongodb.healthCheckTimeout",
      options?.healthCheckTimeout,
      "2 seconds"
    )
    const retireMillis = yield* Durations.millis("mongodb.retireTimeout", options?.retireTimeout, "10 minutes", {
      allowZero: true
    })
    const settings = {
      factory,
      options: yield* clientOptions(options),
      maxPoolSize: cap,
      minPoolSize: Math.max(0, options?.minPoolSize ?? 0),
      retireMillis
    }
    // Background work (retiring replaced clients, logging driver events) runs in the layer's scope; this set's
    // finalizer runs last, and interrupts what the shutdown below left.
    const fork = yield* FiberSet.runtime(yield* FiberSet.make<void, never>())<never>()
    const clock = yield* Clock.Clock
    const limits = (project: ProjectHandle) => tiers.get(project.tierName).limits
    // `maxTimeMS` of a project's reads: the attempt timeout, or the tier's deadline when that is shorter.
    const maxTimeFor = (project: ProjectHandle) =>
      Math.max(1, Math.floor(Math.min(handle.policy.attemptTimeoutMillis, limits(project).timeoutMillis)))
    const deadlineFor = (project: ProjectHandle) => Math.max(1, Math.floor(limits(project).timeoutMillis))
    // `targets` uses `handle` only once bindings exist, which is after the registration below.
    const targets = new Targets<Binding>({
      settings,
      limits,
      refresh: (b) => {
        b.tierSeen = b.project.tierName
        b.maxTimeMS = maxTimeFor(b.project)
        b.deadlineMS = deadlineFor(b.project)
      },
      recordAcquire: (project, seconds) => handle.recordAcquire(project, seconds),
      fork: (effect) => {
        fork(effect)
      },
      now: () => clock.currentTimeMillisUnsafe()
    })
    // Clients with projects bound close when the tenancy service frees them; replaced ones close here.
    yield* Effect.addFinalizer(() => targets.shutdown())
    yield* Effect.acquireRelease(
      Effect.sync(() => tiers.onChange(() => targets.resizeAll())),
      (unlisten) => Effect.sync(unlisten)
    )

    const handle: Handle = yield* tenancy.register<Binding, MongoError>({
      engine: "mongodb",
      classify: (e) => (e instanceof MongoError ? classify(e) : callersError),
      targetCapacity: () => capacity,
      bind: (project, target) => bind(targets, project, target, maxTimeFor, deadlineFor),
      ping: (b) =>
        Effect.tryPromise({
          try: (signal) => ping(b, signal),
          catch: (e) => fromUnknown("ping", e, b.clients.secrets)
        }).pipe(Effect.asVoid),
      stats: (b) => b.clients.stats()
    })

    const views = new Views(handle)
    const healthCheck: Effect.Effect<boolean> = handle.binding.pipe(
      Effect.flatMap(({ binding }) => Effect.tryPromise((signal) => ping(binding, signal))),
      Effect.timeout(healthTimeout),
      Effect.as(true),
      Effect.catchCause(() => Effect.succeed(false))
    )
    return MongoEngine.of({
      handle,
      collection: ((name: string, schema?: DocumentSchema) =>
        views.collection(name, schema)) as MongoEngine["Service"]["collection"],
      transaction: (body, txOptions) => transaction(handle, body, txOptions),
      healthCheck,
      poolStats: Effect.map(handle.binding, ({ binding }) => binding.clients.details())
    })
  })

const callersError: Classification = { infrastructure: false, errorType: "other", sent: false }

/**
 * Registers the MongoDB engine with the tenancy service and builds the operations.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (options?: Options | undefined) => makeWith(defaultFactory, options)

/**
 * The MongoDB engine as a layer (needs the tenancy service and the tier table).
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (options?: Options | undefined): Layer.Layer<MongoEngine, InvalidConfig, Tenancy | Tiers> =>
  Layer.effect(MongoEngine, make(options))

/**
 * The MongoDB engine as a layer, with a driver factory (tests use it to monitor what the driver sends).
 *
 * @category layers
 * @since 0.1.0
 */
export const layerWith = (
  factory: ClientFactory,
  options?: Options | undefined
): Layer.Layer<MongoEngine, InvalidConfig, Tenancy | Tiers> => Layer.effect(MongoEngine, makeWith(factory, options))
