/**
 * The spec's `createMongoDBClient(projectId, { connectionString, tier })`, ported: a layer that registers the
 * project (in the in-memory registry) and provides a client whose methods run as that project, through the
 * MongoDB engine and its guard. Nothing here opens a connection of its own: the project's database lives on the
 * engine's client for its server, shared with the other projects there.
 *
 * | spec | tenantpool |
 * | --- | --- |
 * | `createMongoDBClient(id, { connectionString, tier: Tier.PRO })` | `MongoClient.layer(id, { connectionString, tier: "PRO" })` |
 * | `await mongo.insertOne('users', doc)` | `yield* mongo.insertOne("users", doc)` |
 * | `await mongo.find('users', filter)` | `yield* mongo.find("users", filter)` |
 * | `await mongo.updateOne('users', filter, update)` | `yield* mongo.updateOne("users", filter, update)` |
 * | `await mongo.aggregate('users', pipeline)` | `yield* mongo.aggregate("users", pipeline)` |
 * | `await mongo.healthCheck()` / `mongo.getPoolStats()` | `yield* mongo.healthCheck` / `yield* mongo.getPoolStats` |
 * | `await mongo.close()` | `yield* mongo.close` (or let the layer's scope end) |
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type {
  DeleteResult,
  Document,
  Filter,
  IndexSpecification,
  InsertManyResult,
  InsertOneResult,
  OptionalUnlessRequiredId,
  UpdateFilter,
  UpdateResult,
  WithId
} from "mongodb"
import {
  type GuardError,
  InvalidConfig,
  type InvalidConnectionString,
  type InvalidProjectId
} from "@tenantpool/core/Errors"
import { MemoryRegistry, type ProjectRegistry } from "@tenantpool/core/Registry"
import * as Tenancy from "@tenantpool/core/Tenancy"
import type { TierName, Tiers } from "@tenantpool/core/Tier"
import { MongoEngine, type MongoCollection, type MongoPoolStats } from "./MongoEngine.ts"
import * as MongoEngineModule from "./MongoEngine.ts"
import type { MongoError } from "./MongoError.ts"
import type {
  AggregateOptions,
  CountOptions,
  CreateIndexOptions,
  DeleteOptions,
  FindOneOptions,
  FindOptions,
  InsertManyOptions,
  InsertOneOptions,
  UpdateOptions
} from "./MongoOptions.ts"

/**
 * The spec's options: the project's connection string (plain or `Redacted`) and its tier.
 *
 * @category models
 * @since 0.1.0
 */
export interface ClientOptions {
  readonly connectionString: string | Redacted.Redacted<string>
  readonly tier: TierName
}

/**
 * Errors of the client's operations: the engine's, the guard's, and an id that does not validate.
 *
 * @category models
 * @since 0.1.0
 */
export type ClientError = MongoError | GuardError | InvalidProjectId

/**
 * A project's MongoDB client, as the spec's `createMongoDBClient` returns it.
 *
 * @category services
 * @since 0.1.0
 */
export class MongoClient extends Context.Service<
  MongoClient,
  {
    readonly projectId: string
    readonly insertOne: <T extends Document = Document>(
      collection: string,
      document: OptionalUnlessRequiredId<T>,
      options?: InsertOneOptions
    ) => Effect.Effect<InsertOneResult<T>, ClientError>
    readonly insertMany: <T extends Document = Document>(
      collection: string,
      documents: ReadonlyArray<OptionalUnlessRequiredId<T>>,
      options?: InsertManyOptions
    ) => Effect.Effect<InsertManyResult<T>, ClientError>
    readonly findOne: <T extends Document = Document>(
      collection: string,
      filter?: Filter<T>,
      options?: FindOneOptions
    ) => Effect.Effect<WithId<T> | null, ClientError>
    readonly find: <T extends Document = Document>(
      collection: string,
      filter?: Filter<T>,
      options?: FindOptions
    ) => Effect.Effect<Array<WithId<T>>, ClientError>
    readonly countDocuments: <T extends Document = Document>(
      collection: string,
      filter?: Filter<T>,
      options?: CountOptions
    ) => Effect.Effect<number, ClientError>
    readonly updateOne: <T extends Document = Document>(
      collection: string,
      filter: Filter<T>,
      update: UpdateFilter<T> | ReadonlyArray<Document>,
      options?: UpdateOptions
    ) => Effect.Effect<UpdateResult<T>, ClientError>
    readonly updateMany: <T extends Document = Document>(
      collection: string,
      filter: Filter<T>,
      update: UpdateFilter<T> | ReadonlyArray<Document>,
      options?: UpdateOptions
    ) => Effect.Effect<UpdateResult<T>, ClientError>
    readonly deleteOne: <T extends Document = Document>(
      collection: string,
      filter?: Filter<T>,
      options?: DeleteOptions
    ) => Effect.Effect<DeleteResult, ClientError>
    readonly deleteMany: <T extends Document = Document>(
      collection: string,
      filter?: Filter<T>,
      options?: DeleteOptions
    ) => Effect.Effect<DeleteResult, ClientError>
    readonly aggregate: <B extends Document = Document>(
      collection: string,
      pipeline: ReadonlyArray<Document>,
      options?: AggregateOptions
    ) => Effect.Effect<Array<B>, ClientError>
    readonly createIndex: (
      collection: string,
      index: IndexSpecification,
      options?: CreateIndexOptions
    ) => Effect.Effect<string, ClientError>
    /** A typed collection; run its operations (and streams) as this project with `run` / `runStream`. */
    readonly collection: <T extends Document = Document>(name: string) => MongoCollection<T>
    /** Runs any engine effect (a collection operation, a transaction) as this project. */
    readonly run: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | InvalidProjectId | GuardError, R>
    /** Runs a stream (`collection(…).stream(…)`) as this project. */
    readonly runStream: <A, E, R>(
      stream: Stream.Stream<A, E, R>
    ) => Effect.Effect<Array<A>, E | InvalidProjectId | GuardError, R>
    /** The spec's `healthCheck()`: a ping with a short timeout; never fails. */
    readonly healthCheck: Effect.Effect<boolean>
    /** The spec's `getPoolStats()`: `{ size, available, pending, … }` of the project's server. */
    readonly getPoolStats: Effect.Effect<MongoPoolStats, ClientError>
    /**
     * The spec's `close()`: unregisters the project and waits until its runtime (and, if it was the last project
     * on its server, the server's client) is freed. Operations after it fail with `ProjectNotFound`.
     */
    readonly close: Effect.Effect<void>
  }
>()("@tenantpool/mongodb/MongoClient") {}

/**
 * Registers `projectId` with its connection string and tier, and returns its client; the project is unregistered
 * when the scope closes (if `close` did not already).
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (
  projectId: string,
  options: ClientOptions
): Effect.Effect<
  MongoClient["Service"],
  InvalidProjectId | InvalidConnectionString | InvalidConfig,
  MongoEngine | Tenancy.Tenancy | MemoryRegistry | Scope.Scope
> =>
  Effect.gen(function* () {
    const engine = yield* MongoEngine
    const tenancy = yield* Tenancy.Tenancy
    const registry = yield* MemoryRegistry
    const read = readOptions(options)
    if (read instanceof InvalidConfig) return yield* read
    const config = yield* registry.register({ id: projectId, tier: read.tier, mongodb: read.connectionString })
    const id = config.id
    let closed = false
    const close = Effect.suspend(() => {
      if (closed) return Effect.void
      closed = true
      // The tenancy service frees the project's runtime as soon as its work has drained: wait for that (bounded).
      const freed = Effect.map(tenancy.connections, (live) => !live.some((c) => c.projectId === id))
      const waited = Effect.repeat(freed, { until: (gone) => gone, schedule: Schedule.spaced("10 millis") })
      return Effect.andThen(registry.remove(id), Effect.asVoid(Effect.timeoutOption(waited, "10 seconds")))
    })
    yield* Effect.addFinalizer(() => close)
    const run = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      effect.pipe(tenancy.withProject(id)) as Effect.Effect<A, E | InvalidProjectId | GuardError, R>
    const c = <T extends Document>(name: string) => engine.collection<T>(name)
    return MongoClient.of({
      projectId: id,
      insertOne: <T extends Document>(
        collection: string,
        document: OptionalUnlessRequiredId<T>,
        o?: InsertOneOptions
      ) => run(c<T>(collection).insertOne(document, o)),
      insertMany: <T extends Document>(
        collection: string,
        documents: ReadonlyArray<OptionalUnlessRequiredId<T>>,
        o?: InsertManyOptions
      ) => run(c<T>(collection).insertMany(documents, o)),
      findOne: <T extends Document>(collection: string, filter?: Filter<T>, o?: FindOneOptions) =>
        run(c<T>(collection).findOne(filter, o)),
      find: <T extends Document>(collection: string, filter?: Filter<T>, o?: FindOptions) =>
        run(c<T>(collection).find(filter, o)),
      countDocuments: <T extends Document>(collection: string, filter?: Filter<T>, o?: CountOptions) =>
        run(c<T>(collection).countDocuments(filter, o)),
      updateOne: <T extends Document>(
        collection: string,
        filter: Filter<T>,
        update: UpdateFilter<T> | ReadonlyArray<Document>,
        o?: UpdateOptions
      ) => run(c<T>(collection).updateOne(filter, update, o)),
      updateMany: <T extends Document>(
        collection: string,
        filter: Filter<T>,
        update: UpdateFilter<T> | ReadonlyArray<Document>,
        o?: UpdateOptions
      ) => run(c<T>(collection).updateMany(filter, update, o)),
      deleteOne: <T extends Document>(collection: string, filter?: Filter<T>, o?: DeleteOptions) =>
        run(c<T>(collection).deleteOne(filter, o)),
      deleteMany: <T extends Document>(collection: string, filter?: Filter<T>, o?: DeleteOptions) =>
        run(c<T>(collection).deleteMany(filter, o)),
      aggregate: <B extends Document>(collection: string, pipeline: ReadonlyArray<Document>, o?: AggregateOptions) =>
        run(c(collection).aggregate<B>(pipeline, o)),
      createIndex: (collection, index, o) => run(c(collection).createIndex(index, o)),
      collection: c,
      run,
      runStream: (stream) => run(Stream.runCollect(stream)),
      healthCheck: Effect.catchCause(run(engine.healthCheck), () => Effect.succeed(false)),
      getPoolStats: run(engine.poolStats),
      close
    })
  })

/**
 * The client as a layer (needs the engine, the tenancy service and the in-memory registry).
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (
  projectId: string,
  options: ClientOptions
): Layer.Layer<
  MongoClient,
  InvalidProjectId | InvalidConnectionString | InvalidConfig,
  MongoEngine | Tenancy.Tenancy | MemoryRegistry
> => Layer.effect(MongoClient, make(projectId, options))

// The options, read once: not an object, or a getter or proxy that throws, is an InvalidConfig naming the field
// (the registry then checks the tier and the connection string).
const readOptions = (options: unknown): ClientOptions | InvalidConfig => {
  if (typeof options !== "object" || options === null) {
    return new InvalidConfig({ field: "options", reason: "must be an object with connectionString and tier" })
  }
  let field = "connectionString"
  try {
    const connectionString = (options as ClientOptions).connectionString
    field = "tier"
    const tier = (options as ClientOptions).tier
    return { connectionString, tier }
  } catch {
    return new InvalidConfig({ field, reason: "could not be read (a getter or proxy threw)" })
  }
}

/**
 * Everything in one layer, for scripts and demos: the client over the engine over an in-memory tenancy service.
 * Also provides `MongoEngine`, `Tenancy`, `Tiers`, `ProjectRegistry` and `MemoryRegistry`.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerStandalone = (
  projectId: string,
  options: ClientOptions,
  config?: {
    readonly engine?: MongoEngineModule.Options | undefined
    readonly tenancy?: Parameters<typeof Tenancy.layerMemory>[0]
  }
): Layer.Layer<
  MongoClient | MongoEngine | Tenancy.Tenancy | Tiers | ProjectRegistry | MemoryRegistry,
  InvalidProjectId | InvalidConnectionString | InvalidConfig
> =>
  layer(projectId, options).pipe(
    Layer.provideMerge(MongoEngineModule.layer(config?.engine)),
    Layer.provideMerge(Tenancy.layerMemory(config?.tenancy))
  )
