/**
 * MongoDB per project on the official driver, through the tenantpool guard.
 *
 * Connections (ARCHITECTURE §4): one `MongoClient` per target (server, user and credentials), created by the first
 * project that uses it and closed when the last one is freed; each project works in its own database on it
 * (`client.db(target.database)`). The pool is sized from the tiers of the projects on the target:
 * `maxPoolSize` is the largest `maxPool` among them, capped by `Options.maxPoolSize`. The driver cannot resize a
 * live pool, so when a larger tier arrives the target gets a new client for new work and the old one closes once
 * the work it started has drained (it never shrinks while in use: idle connections go after `maxIdleTime`).
 * `minPoolSize` is 0 by default: warm connections per target multiply with targets, a pool with a minimum refills
 * itself in the background and right after a pool clear (a reconnect storm against a recovering server), and a
 * connection costs one handshake when it is needed.
 *
 * Timeouts become server-side limits: reads and aggregations carry `maxTimeMS` equal to the attempt's time
 * (the engine's attempt timeout, or the tier's deadline when that is shorter), so a query the guard abandons also
 * stops on the server. The driver's `timeoutMS` (CSOT) has no effect in driver 7 and is not used. Every driver call
 * gets an `AbortSignal` that the engine aborts when the guard abandons the attempt: a call still waiting for a
 * connection or for server selection is dropped without being sent, and a cursor is closed (killCursors). Aborting
 * a call whose reply is on its way closes that connection, which is why it happens only on abandonment.
 *
 * Retries: reads are retried by the guard only (`retryReads: false`), so each read retry is an attempt with its own
 * timeout, breaker accounting and metrics, and retries do not multiply. Writes keep the driver's retryable writes
 * (`retryWrites`, on by default): on a replica set the driver retries a write once with the same transaction number,
 * which the server applies at most once, something the guard cannot do; the guard itself never retries a write
 * unless the caller declares it idempotent. On a standalone server (FerretDB included) retryable writes are inert.
 *
 * @since 0.1.0
 */
import * as Arr from "effect/Array"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Pull from "effect/Pull"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import {
  type AbstractCursor,
  type AggregateOptions,
  type AnyBulkWriteOperation,
  type BulkWriteOptions,
  type BulkWriteResult,
  type ClientSession,
  type Collection,
  type CountDocumentsOptions,
  type CreateIndexesOptions,
  type DeleteOptions,
  type DeleteResult,
  type DistinctOptions,
  type DropIndexesOptions,
  type Document,
  type Filter,
  type FindOneAndUpdateOptions,
  type FindOneOptions,
  type FindOptions,
  type Flatten,
  type IndexDescription,
  type IndexSpecification,
  type ListIndexesOptions,
  type InsertManyResult,
  type InsertOneOptions,
  type InsertOneResult,
  MongoClient as DriverClient,
  type MongoClientOptions,
  type OptionalUnlessRequiredId,
  type ReplaceOptions,
  type TransactionOptions,
  type UpdateFilter,
  type UpdateOptions,
  type UpdateResult,
  type WithId,
  type WithoutId
} from "mongodb"
import * as Redacted from "effect/Redacted"
import type { ProjectHandle } from "@tenantpool/core/CurrentProject"
import * as Durations from "@tenantpool/core/Durations"
import type { GuardError, InvalidConfig } from "@tenantpool/core/Errors"
import type { ProtectionDetail } from "@tenantpool/core/Protections"
import type { Target } from "@tenantpool/core/Target"
import { Tenancy } from "@tenantpool/core/Tenancy"
import type { AttemptSignal, Classification, EngineHandle, Operation, PoolStats } from "@tenantpool/core/Engine"
import { Tiers } from "@tenantpool/core/Tier"
import { tierRank } from "@tenantpool/core/Vocabulary"
import { crossDatabaseStage, writesOutput } from "./internal/pipeline.ts"
import { type Binding, type Capabilities, Flight, Generation, SharedTarget, trackCursor } from "./internal/shared.ts"
import { classify, driverErrorOf, fromUnknown, MongoError, refused } from "./MongoError.ts"

// ---------------------------------------------------------------------------------------------------------------
// Options and models
// ---------------------------------------------------------------------------------------------------------------

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
 * Options every write takes: `idempotent` declares that running it twice is harmless (a `$set` to fixed values, a
 * replace), which lets the guard retry it after an infrastructure error. Off by default.
 *
 * @category models
 * @since 0.1.0
 */
export interface WriteGuardOptions {
  readonly idempotent?: boolean | undefined
}

/**
 * A schema whose encoded side is a document: results of a collection made with it are decoded with it.
 *
 * @category models
 * @since 0.1.0
 */
export type DocumentSchema = Schema.Codec<any, Document, any, any>

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
 * The operations on one collection of the current project's database. `T` is the stored document type, `A` what
 * reads return (`WithId<T>`, or the schema's type when the collection was made with a schema), `R` and `D` the
 * schema's decoding services and error.
 *
 * @category models
 * @since 0.1.0
 */
export interface MongoCollection<T extends Document, A = WithId<T>, R = never, D = never> {
  readonly name: string
  readonly insertOne: (
    document: OptionalUnlessRequiredId<T>,
    options?: InsertOneOptions & WriteGuardOptions
  ) => Effect.Effect<InsertOneResult<T>, Fail>
  readonly insertMany: (
    documents: ReadonlyArray<OptionalUnlessRequiredId<T>>,
    options?: BulkWriteOptions & WriteGuardOptions
  ) => Effect.Effect<InsertManyResult<T>, Fail>
  readonly findOne: (filter?: Filter<T>, options?: FindOneOptions) => Effect.Effect<A | null, Fail | D, R>
  /** `find` read to the end, as an array (filter, projection, sort, skip, limit in the options). */
  readonly find: (filter?: Filter<T>, options?: FindOptions) => Effect.Effect<Array<A>, Fail | D, R>
  /**
   * `find` as a stream: one guarded operation per batch; the cursor is closed when the stream ends, fails or is
   * interrupted. Pass `maxTimeMS` to bound the cursor's total server time.
   */
  readonly stream: (filter?: Filter<T>, options?: FindOptions) => Stream.Stream<A, Fail | D, R>
  readonly countDocuments: (filter?: Filter<T>, options?: CountDocumentsOptions) => Effect.Effect<number, Fail>
  readonly distinct: <K extends keyof WithId<T> & string>(
    key: K,
    filter?: Filter<T>,
    options?: DistinctOptions
  ) => Effect.Effect<Array<Flatten<WithId<T>[K]>>, Fail>
  readonly updateOne: (
    filter: Filter<T>,
    update: UpdateFilter<T> | ReadonlyArray<Document>,
    options?: UpdateOptions & WriteGuardOptions
  ) => Effect.Effect<UpdateResult<T>, Fail>
  readonly updateMany: (
    filter: Filter<T>,
    update: UpdateFilter<T> | ReadonlyArray<Document>,
    options?: UpdateOptions & WriteGuardOptions
  ) => Effect.Effect<UpdateResult<T>, Fail>
  readonly replaceOne: (
    filter: Filter<T>,
    replacement: WithoutId<T>,
    options?: ReplaceOptions & WriteGuardOptions
  ) => Effect.Effect<UpdateResult<T>, Fail>
  readonly findOneAndUpdate: (
    filter: Filter<T>,
    update: UpdateFilter<T> | ReadonlyArray<Document>,
    options?: FindOneAndUpdateOptions & WriteGuardOptions
  ) => Effect.Effect<A | null, Fail | D, R>
  readonly deleteOne: (
    filter?: Filter<T>,
    options?: DeleteOptions & WriteGuardOptions
  ) => Effect.Effect<DeleteResult, Fail>
  readonly deleteMany: (
    filter?: Filter<T>,
    options?: DeleteOptions & WriteGuardOptions
  ) => Effect.Effect<DeleteResult, Fail>
  readonly bulkWrite: (
    operations: ReadonlyArray<AnyBulkWriteOperation<T>>,
    options?: BulkWriteOptions & WriteGuardOptions
  ) => Effect.Effect<BulkWriteResult, Fail>
  /**
   * An aggregation read to the end. Stages that reach another database (`$out`/`$merge` into one, Atlas-style
   * `$lookup` from one) are refused; a pipeline with `$out`/`$merge` is not retried. With `schema`, results are
   * decoded with it.
   */
  readonly aggregate: {
    <B extends Document = Document>(
      pipeline: ReadonlyArray<Document>,
      options?: AggregateOptions
    ): Effect.Effect<Array<B>, Fail>
    <S extends Schema.Top>(
      pipeline: ReadonlyArray<Document>,
      options: AggregateOptions & { readonly schema: S }
    ): Effect.Effect<Array<S["Type"]>, Fail | Schema.SchemaError, S["DecodingServices"]>
  }
  /** An aggregation as a stream (see `stream`). */
  readonly aggregateStream: {
    <B extends Document = Document>(
      pipeline: ReadonlyArray<Document>,
      options?: AggregateOptions
    ): Stream.Stream<B, Fail>
    <S extends Schema.Top>(
      pipeline: ReadonlyArray<Document>,
      options: AggregateOptions & { readonly schema: S }
    ): Stream.Stream<S["Type"], Fail | Schema.SchemaError, S["DecodingServices"]>
  }
  readonly createIndex: (index: IndexSpecification, options?: CreateIndexesOptions) => Effect.Effect<string, Fail>
  readonly createIndexes: (
    indexes: ReadonlyArray<IndexDescription>,
    options?: CreateIndexesOptions
  ) => Effect.Effect<Array<string>, Fail>
  readonly listIndexes: () => Effect.Effect<Array<Document>, Fail>
  readonly dropIndex: (name: string) => Effect.Effect<void, Fail>
}

/**
 * A collection inside a transaction: its operations run on the transaction's session, inside the one guarded
 * `transaction` operation (they take no admission slot of their own).
 *
 * @category models
 * @since 0.1.0
 */
export interface TransactionCollection<T extends Document> {
  readonly name: string
  readonly insertOne: (document: OptionalUnlessRequiredId<T>) => Effect.Effect<InsertOneResult<T>, MongoError>
  readonly insertMany: (
    documents: ReadonlyArray<OptionalUnlessRequiredId<T>>
  ) => Effect.Effect<InsertManyResult<T>, MongoError>
  readonly findOne: (filter?: Filter<T>, options?: FindOneOptions) => Effect.Effect<WithId<T> | null, MongoError>
  readonly find: (filter?: Filter<T>, options?: FindOptions) => Effect.Effect<Array<WithId<T>>, MongoError>
  readonly countDocuments: (filter?: Filter<T>) => Effect.Effect<number, MongoError>
  readonly updateOne: (
    filter: Filter<T>,
    update: UpdateFilter<T> | ReadonlyArray<Document>,
    options?: UpdateOptions
  ) => Effect.Effect<UpdateResult<T>, MongoError>
  readonly updateMany: (
    filter: Filter<T>,
    update: UpdateFilter<T> | ReadonlyArray<Document>,
    options?: UpdateOptions
  ) => Effect.Effect<UpdateResult<T>, MongoError>
  readonly replaceOne: (
    filter: Filter<T>,
    replacement: WithoutId<T>,
    options?: ReplaceOptions
  ) => Effect.Effect<UpdateResult<T>, MongoError>
  readonly findOneAndUpdate: (
    filter: Filter<T>,
    update: UpdateFilter<T> | ReadonlyArray<Document>,
    options?: FindOneAndUpdateOptions
  ) => Effect.Effect<WithId<T> | null, MongoError>
  readonly deleteOne: (filter?: Filter<T>) => Effect.Effect<DeleteResult, MongoError>
  readonly deleteMany: (filter?: Filter<T>) => Effect.Effect<DeleteResult, MongoError>
  readonly aggregate: <B extends Document = Document>(
    pipeline: ReadonlyArray<Document>
  ) => Effect.Effect<Array<B>, MongoError>
}

/**
 * What a transaction body gets: the project's collections bound to the transaction's session.
 *
 * @category models
 * @since 0.1.0
 */
export interface MongoTransaction {
  readonly collection: <T extends Document = Document>(name: string) => TransactionCollection<T>
}

// ---------------------------------------------------------------------------------------------------------------
// Operations (static: one object per operation, not per call)
// ---------------------------------------------------------------------------------------------------------------

type Op = Operation<Binding>

// Writes come in two flavours: as declared by default (not retried), and declared idempotent by the caller.
const pair = (name: string): readonly [Op, Op] => [
  { name, idempotent: false, write: true, cancel: (b) => cancelAbandoned(b) },
  { name, idempotent: true, write: true, cancel: (b) => cancelAbandoned(b) }
]
const single = (name: string, idempotent: boolean, write: boolean): Op => ({
  name,
  idempotent,
  write,
  cancel: (b) => cancelAbandoned(b)
})

const OP = {
  insertOne: pair("insertOne"),
  insertMany: pair("insertMany"),
  updateOne: pair("updateOne"),
  updateMany: pair("updateMany"),
  replaceOne: pair("replaceOne"),
  findOneAndUpdate: pair("findOneAndUpdate"),
  deleteOne: pair("deleteOne"),
  deleteMany: pair("deleteMany"),
  bulkWrite: pair("bulkWrite"),
  findOne: single("findOne", true, false),
  find: single("find", true, false),
  // A read, but not retried: a cursor cannot resume after a failed or abandoned batch.
  getMore: single("getMore", false, false),
  countDocuments: single("countDocuments", true, false),
  distinct: single("distinct", true, false),
  aggregate: single("aggregate", true, false),
  aggregateWrite: single("aggregate", false, true),
  createIndex: single("createIndex", true, true),
  createIndexes: single("createIndexes", true, true),
  listIndexes: single("listIndexes", true, false),
  dropIndex: single("dropIndex", false, true),
  transaction: single("transaction", false, true)
} as const

// Why an abandoned call's signal is aborted; never surfaces (the guard has already answered the caller).
const abandoned = new Error("tenantpool: attempt abandoned (timeout or interruption)")

/** Aborts the driver calls of a binding whose attempts the guard has abandoned. */
const cancelAbandoned = (b: Binding) => {
  for (const flight of b.flights) {
    if (flight.attempt.active) continue
    b.flights.delete(flight)
    flight.controller.abort(abandoned)
  }
}

// MongoDB-wire servers that reject `maxTimeMS` on a command answer FailedToParse about it before executing anything.
const rejectsMaxTime = (e: unknown): boolean =>
  (e as { code?: unknown })?.code === 9 && /maxTimeMS/.test(String((e as { message?: unknown })?.message))

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

// The key a client is shared by: the target's key, plus the database when it is the implicit authSource (a user
// defined in that database authenticates there, so the same user name in another database is another identity).
const clientKey = (target: Target): string =>
  target.user !== undefined && target.params["authSource"] === undefined
    ? `${target.key}|authSource=${target.database}`
    : target.key

const hostLabel = (target: Target): string => target.label.replace(/\/[^/]*$/, "")

type Decode<A, R, D> = ((u: unknown) => Effect.Effect<A, D, R>) | undefined

// ---------------------------------------------------------------------------------------------------------------
// The service
// ---------------------------------------------------------------------------------------------------------------

/**
 * The MongoDB engine: every operation runs for the current project, in its database, through the guard.
 *
 * @category services
 * @since 0.1.0
 */
export class MongoEngine extends Context.Service<
  MongoEngine,
  {
    readonly handle: EngineHandle<Binding, MongoError>
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

/**
 * Registers the MongoDB engine with the tenancy service, with a driver factory (tests pass one that monitors).
 *
 * @category constructors
 * @since 0.1.0
 */
export const makeWith = (factory: ClientFactory, options?: Options | undefined) =>
  Effect.gen(function* () {
    const tenancy = yield* Tenancy
    const tiers = yield* Tiers
    const context = yield* Effect.context<never>()
    const runFork = Effect.runForkWith(context)
    const cap = Math.max(1, options?.maxPoolSize ?? 100)
    const minPool = Math.max(0, options?.minPoolSize ?? 0)
    const capacity = options?.targetCapacity ?? cap
    const healthTimeout = yield* Durations.millis(
      "mongodb.healthCheckTimeout",
      options?.healthCheckTimeout,
      "2 seconds"
    )
    const retireMillis = yield* Durations.millis("mongodb.retireTimeout", options?.retireTimeout, "10 minutes", {
      allowZero: true
    })
    const baseOptions = yield* clientOptions(options)
    const shared = new Map<string, SharedTarget>()
    // Clients taken out of service that still serve work they started (closed when drained, or at shutdown).
    const retiredAll = new Set<Generation>()

    // ---- logging (driver events arrive outside any fiber) --------------------------------------------------
    const log = (level: "Warning" | "Info" | "Debug", message: string, annotations: Record<string, unknown>) =>
      void runFork(
        (level === "Warning"
          ? Effect.logWarning(message)
          : level === "Info"
            ? Effect.logInfo(message)
            : Effect.logDebug(message)
        ).pipe(Effect.annotateLogs(annotations))
      )

    // ---- sizing --------------------------------------------------------------------------------------------
    const limitsOf = (project: ProjectHandle) => tiers.get(project.tierName).limits
    const maxTimeFor = (project: ProjectHandle) =>
      Math.max(1, Math.floor(Math.min(handle.policy.attemptTimeoutMillis, limitsOf(project).timeoutMillis)))
    const sizeFor = (s: SharedTarget) => {
      let want = 1
      for (const b of s.bindings) want = Math.max(want, limitsOf(b.project).maxPool)
      return Math.max(1, Math.min(cap, want))
    }
    const topOf = (s: SharedTarget): Binding | undefined => {
      let top: Binding | undefined
      for (const b of s.bindings)
        if (top === undefined || tierRank[b.project.tierName] > tierRank[top.project.tierName]) top = b
      return top
    }

    // ---- clients -------------------------------------------------------------------------------------------
    const newGeneration = (
      s: { readonly label: string; readonly target: Target },
      size: number,
      sink: () => SharedTarget | undefined
    ) => {
      const client = factory(Redacted.value(s.target.url), {
        ...baseOptions,
        maxPoolSize: size,
        minPoolSize: Math.min(minPool, size)
      })
      const g = new Generation(client, size, Math.min(minPool, size))
      client.on("connectionCreated", () => {
        g.created++
      })
      client.on("connectionClosed", () => {
        g.closedConnections++
      })
      client.on("connectionCheckOutStarted", () => {
        g.waiting++
      })
      client.on("connectionCheckedOut", (e) => {
        g.waiting--
        g.checkedOut++
        const top = sink()?.top
        if (top !== undefined) handle.recordAcquire(top.project, e.durationMS / 1000)
      })
      client.on("connectionCheckOutFailed", (e) => {
        g.waiting--
        g.checkoutFailed++
        const st = sink()
        if (st === undefined) return
        const now = Date.now()
        if (now - st.lastCheckoutLog < 5_000) {
          st.suppressedCheckoutFailures++
          return
        }
        log("Warning", "MongoDB connection checkout failed", {
          target: s.label,
          address: e.address,
          reason: e.reason,
          waitedMillis: Math.round(e.durationMS),
          alsoFailedSinceLastLog: st.suppressedCheckoutFailures
        })
        st.lastCheckoutLog = now
        st.suppressedCheckoutFailures = 0
      })
      client.on("connectionCheckedIn", () => {
        g.checkedOut--
      })
      client.on("connectionPoolCleared", (e) => {
        g.cleared++
        log("Warning", "MongoDB connection pool cleared", {
          target: s.label,
          address: e.address,
          interruptInUseConnections: e.interruptInUseConnections === true
        })
      })
      // Without a listener an 'error' event would throw; the driver reports failures through the operations.
      client.on("error", () => {})
      return g
    }

    /** Closes a client; the promise settles when the driver has closed it (never rejects). */
    const closeGeneration = (g: Generation): Promise<void> => {
      if (g.closed) return Promise.resolve()
      g.closed = true
      if (g.retireTimer !== undefined) clearTimeout(g.retireTimer)
      g.retiredIn?.delete(g)
      retiredAll.delete(g)
      log("Debug", "MongoDB client closed", { maxPoolSize: g.maxPoolSize })
      return g.client.close().catch(() => undefined)
    }

    /** Takes a client out of service: closed now if idle, else once its work drains (or at the retire timeout). */
    const retire = (s: SharedTarget, g: Generation): Promise<void> => {
      if (g.retired || g.closed) return Promise.resolve()
      g.retired = true
      g.retiredIn = s.retired
      s.retired.add(g)
      retiredAll.add(g)
      if (g.inflight === 0) return closeGeneration(g)
      g.retireTimer = setTimeout(() => void closeGeneration(g), retireMillis)
      g.retireTimer.unref()
      return Promise.resolve()
    }

    const release = (g: Generation) => {
      if (--g.inflight > 0) return
      // A checkout the engine aborted leaves the driver's wait queue without an event (no checkOutFailed): with
      // nothing of ours in flight, nothing of ours is waiting either, so the count starts over.
      g.waiting = 0
      if (g.retired) void closeGeneration(g)
    }

    /** A larger tier arrived (or a tier grew): new work goes to a client with a larger pool. */
    const grow = (s: SharedTarget) => {
      const want = sizeFor(s)
      if (want <= s.gen.maxPoolSize) return
      const old = s.gen
      let next: Generation
      try {
        next = newGeneration(s, want, () => s)
      } catch (e) {
        // The same connection string made the current client, so this is not expected; keep serving with it.
        log("Warning", "MongoDB pool limit could not be raised: keeping the current client", {
          target: s.label,
          from: old.maxPoolSize,
          to: want,
          error: fromUnknown("connect", e, s.secrets).message
        })
        return
      }
      s.gen = next
      void retire(s, old)
      log("Info", "MongoDB pool limit raised: new client for new work, the old one closes when drained", {
        target: s.label,
        from: old.maxPoolSize,
        to: want
      })
    }

    const refresh = (s: SharedTarget) => {
      for (const b of s.bindings) {
        b.tierSeen = b.project.tierName
        b.maxTimeMS = maxTimeFor(b.project)
      }
      s.top = topOf(s)
      grow(s)
    }
    const unlistenTiers = tiers.onChange(() => {
      for (const s of shared.values()) refresh(s)
    })

    const acquireShared = (project: ProjectHandle, target: Target) =>
      Effect.acquireRelease(
        Effect.try({
          try: () => {
            const key = clientKey(target)
            let s = shared.get(key)
            if (s === undefined) {
              const label = hostLabel(target)
              const secrets = target.password === undefined ? [] : [Redacted.value(target.password)]
              const seed = { label, target }
              let holder: SharedTarget | undefined
              const g = newGeneration(seed, Math.max(1, Math.min(cap, limitsOf(project).maxPool)), () => holder)
              s = holder = new SharedTarget(key, label, target, secrets, g)
              shared.set(key, s)
              log("Debug", "MongoDB client created", { target: label, maxPoolSize: g.maxPoolSize })
            }
            s.refs++
            return s
          },
          catch: (e) =>
            fromUnknown("connect", e, target.password === undefined ? undefined : [Redacted.value(target.password)])
        }),
        (s) =>
          Effect.suspend(() => {
            if (--s.refs > 0) return Effect.void
            if (shared.get(s.key) === s) shared.delete(s.key)
            // Work that outlived its project (a stream still being read) keeps the client until it is done; an idle
            // client is closed now, and its connections are gone when the project's release completes (bounded).
            const closing = Promise.all(s.generations().map((g) => retire(s, g)))
            return Effect.promise(() =>
              Promise.race([closing, new Promise((resolve) => setTimeout(resolve, 5_000).unref())])
            )
          })
      )

    // ---- per-call plumbing ---------------------------------------------------------------------------------
    const begin = (b: Binding, attempt: AttemptSignal, controller: AbortController, gen: Generation) => {
      if (b.project.tierName !== b.tierSeen) refresh(b.shared)
      gen.inflight++
      const flight = new Flight(b, gen, attempt, controller)
      b.flights.add(flight)
      return flight
    }
    const end = (flight: Flight) => {
      flight.binding.flights.delete(flight)
      release(flight.gen)
    }

    const dbOf = (b: Binding, gen: Generation) => {
      if (b.cacheGen !== gen || b.db === undefined) {
        b.collections.clear()
        b.db = gen.client.db(b.database)
        b.cacheGen = gen
      }
      return b.db
    }
    const collectionOf = (b: Binding, gen: Generation, name: string): Collection<Document> => {
      const db = dbOf(b, gen)
      let c = b.collections.get(name)
      if (c === undefined) {
        if (b.collections.size >= 256) b.collections.clear()
        c = db.collection(name)
        b.collections.set(name, c)
      }
      return c
    }

    const syncErrors = new Map<string, (cause: unknown) => MongoError>()
    const syncError = (name: string) => {
      let f = syncErrors.get(name)
      if (f === undefined) {
        f = (cause: unknown) => fromUnknown(name, cause)
        syncErrors.set(name, f)
      }
      return f
    }

    /**
     * One guarded driver call on a collection. `maxTime` says whether it is a read (it then carries `maxTimeMS`);
     * `call` receives the signal to pass to the driver and the `maxTimeMS` to send (undefined: send none).
     */
    const runOn = <A>(
      op: Op,
      name: string,
      maxTime: boolean,
      userMaxTime: number | undefined,
      call: (
        c: Collection<Document>,
        signal: AbortSignal,
        maxTimeMS: number | undefined,
        gen: Generation
      ) => Promise<A>,
      // For the installed protections (rate limits, the MongoDB analyzer); no detail: not checked.
      detail?: ProtectionDetail
    ): Effect.Effect<A, Fail> => {
      const f = (b: Binding, attempt: AttemptSignal): Promise<A> => {
        const gen = b.shared.gen
        const flight = begin(b, attempt, new AbortController(), gen)
        const c = collectionOf(b, gen, name)
        const signal = flight.controller.signal
        let limit: number | undefined
        if (maxTime && !gen.noMaxTime.has(op.name)) {
          limit = userMaxTime === undefined ? b.maxTimeMS : Math.min(userMaxTime, b.maxTimeMS)
        } else {
          limit = userMaxTime
        }
        let promise = call(c, signal, limit, gen)
        if (limit !== undefined && userMaxTime === undefined) {
          promise = promise.catch((e: unknown) => {
            if (!rejectsMaxTime(e) || signal.aborted) throw e
            // Refused before executing: remember, and send it again without the limit.
            gen.noMaxTime.add(op.name)
            return call(c, signal, undefined, gen)
          })
        }
        return promise.then(
          (a) => {
            end(flight)
            return a
          },
          (e: unknown) => {
            end(flight)
            throw fromUnknown(op.name, e, b.shared.secrets)
          }
        )
      }
      return detail === undefined
        ? handle.run(op, f, syncError(op.name))
        : (handle.run(op, f, syncError(op.name), undefined, detail) as Effect.Effect<A, Fail>)
    }

    const withLimits = <O extends object>(
      o: O | undefined,
      signal: AbortSignal,
      maxTimeMS: number | undefined
    ): O & { signal: AbortSignal; maxTimeMS?: number } => {
      const out = (o === undefined ? {} : { ...o }) as O & { signal: AbortSignal; maxTimeMS?: number }
      out.signal = signal
      if (maxTimeMS !== undefined) out.maxTimeMS = maxTimeMS
      if ("idempotent" in out) delete (out as { idempotent?: unknown }).idempotent
      return out
    }
    const pick = (ops: readonly [Op, Op], o: WriteGuardOptions | undefined) => ops[o?.idempotent === true ? 1 : 0]

    // ---- cursor streams ------------------------------------------------------------------------------------
    const cursorStream = <A, R, D>(
      op: Op,
      name: string,
      open: (c: Collection<Document>, signal: AbortSignal) => AbstractCursor<Document>,
      decode: Decode<A, R, D>,
      check: ((b: Binding) => MongoError | undefined) | undefined
    ): Stream.Stream<A, Fail | D, R> =>
      Stream.unwrap(
        Effect.gen(function* () {
          const { binding } = yield* handle.binding
          const refusal = check?.(binding)
          if (refusal !== undefined) return yield* Effect.fail(refusal)
          const s = binding.shared
          const gen = s.gen
          gen.inflight++
          const sc = new StreamCursor()
          // The first batch's signal drops a `find` still waiting for a connection (and closes its cursor); a
          // getMore is never aborted (see StreamCursor), so later batches get a signal nothing listens to.
          let first = new AbortController()
          const later = new AbortController()
          let delivered = false
          let done = false
          yield* Effect.addFinalizer(() => sc.close.pipe(Effect.ensuring(Effect.sync(() => release(gen)))))
          const fetch = (b: Binding, attempt: AttemptSignal): Promise<Array<Document>> => {
            if (!delivered) {
              // First batch (or its retry after an abandoned attempt, whose cursor the abort closed).
              first = new AbortController()
              sc.cursor = trackCursor(gen, open(collectionOf(b, gen, name), first.signal))
            }
            const c = sc.cursor!
            const flight = begin(b, attempt, delivered ? later : first, gen)
            const batch = (sc.batch = c.hasNext())
            return batch.then(
              (more) => {
                sc.batch = undefined
                end(flight)
                const docs = more ? c.readBufferedDocuments() : []
                delivered = true
                if (c.closed || c.id === undefined || (c.id.isZero() && c.bufferedCount() === 0)) done = true
                return docs
              },
              (e: unknown) => {
                sc.batch = undefined
                end(flight)
                throw fromUnknown(delivered ? "getMore" : op.name, e, b.shared.secrets)
              }
            )
          }
          const batch = (): Effect.Effect<Array<Document>, Fail> =>
            delivered ? handle.run(OP.getMore, fetch, syncError("getMore")) : handle.run(op, fetch, syncError(op.name))
          const pull: Pull.Pull<Arr.NonEmptyReadonlyArray<A>, Fail | D, void, R> = Effect.suspend(() => {
            if (done) return Cause.done()
            return Effect.flatMap(batch(), (docs) => {
              if (!Arr.isArrayNonEmpty(docs)) return done ? Cause.done() : pull
              if (decode === undefined) return Effect.succeed(docs as unknown as Arr.NonEmptyReadonlyArray<A>)
              return Effect.forEach(docs, decode) as Effect.Effect<Arr.NonEmptyReadonlyArray<A>, D, R>
            })
          })
          return Stream.fromPull(Effect.succeed(pull))
        })
      )

    // ---- registration ---------------------------------------------------------------------------------------
    // The closures above use `handle` only once bindings exist, which is after this registration.
    const handle: EngineHandle<Binding, MongoError> = yield* tenancy.register<Binding, MongoError>({
      engine: "mongodb",
      classify: (e) => (e instanceof MongoError ? classify(e) : callersError),
      targetCapacity: () => capacity,
      bind: (project, target) =>
        Effect.gen(function* () {
          const s = yield* acquireShared(project, target)
          return yield* Effect.acquireRelease(
            Effect.sync(() => {
              const b: Binding = {
                project,
                target,
                shared: s,
                database: target.database,
                flights: new Set(),
                collections: new Map(),
                cacheGen: undefined,
                db: undefined,
                tierSeen: project.tierName,
                maxTimeMS: maxTimeFor(project)
              }
              s.bindings.add(b)
              s.top = topOf(s)
              grow(s)
              return b
            }),
            (b) =>
              Effect.sync(() => {
                s.bindings.delete(b)
                s.top = topOf(s)
              })
          )
        }),
      ping: (b) =>
        Effect.tryPromise({
          try: (signal) => dbOf(b, b.shared.gen).command({ ping: 1 }, { signal }),
          catch: (e) => fromUnknown("ping", e, b.shared.secrets)
        }).pipe(Effect.asVoid),
      stats: (b) => statsOf(b.shared)
    })

    const statsOf = (s: SharedTarget): PoolStats => {
      let size = 0
      let out = 0
      let pending = 0
      for (const g of s.generations()) {
        if (g.closed) continue
        size += g.size
        out += g.checkedOut
        // Waiting checkouts, bounded by the engine's calls in flight that hold no connection (see `release`).
        pending += Math.max(0, Math.min(g.waiting, g.inflight - g.checkedOut))
      }
      return { size, available: Math.max(0, size - out), pending }
    }

    const poolStatsOf = (s: SharedTarget): MongoPoolStats => {
      const base = statsOf(s)
      let checkedOut = 0
      let cursors = 0
      let clients = 0
      let poolCleared = 0
      let checkoutFailed = 0
      for (const g of s.generations()) {
        poolCleared += g.cleared
        checkoutFailed += g.checkoutFailed
        if (g.closed) continue
        clients++
        checkedOut += g.checkedOut
        cursors += g.cursors
      }
      return {
        ...base,
        maxPoolSize: s.gen.maxPoolSize,
        minPoolSize: s.gen.minPoolSize,
        checkedOut,
        cursors,
        clients,
        projects: s.bindings.size,
        poolCleared,
        checkoutFailed
      }
    }

    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        unlistenTiers()
        // Clients with projects bound close when the tenancy service frees them; replaced ones go now.
        const closing = Promise.all([...retiredAll].map(closeGeneration))
        return Effect.promise(() =>
          Promise.race([closing, new Promise((resolve) => setTimeout(resolve, 5_000).unref())])
        )
      })
    )

    // ---- capabilities (transactions) -----------------------------------------------------------------------
    const capabilitiesOf = (gen: Generation): Promise<Capabilities> => {
      if (gen.capabilities === undefined) {
        const admin = gen.client.db("admin")
        gen.capabilities = Promise.all([admin.command({ hello: 1 }), admin.command({ buildInfo: 1 })]).then(
          ([hello, build]) => {
            const ferret = typeof build["ferretdbVersion"] === "string" ? build["ferretdbVersion"] : undefined
            const setName = typeof hello["setName"] === "string" ? hello["setName"] : undefined
            const sharded = hello["msg"] === "isdbgrid"
            const topology =
              setName !== undefined ? `replica set ${setName}` : sharded ? "sharded cluster" : "standalone server"
            const product = ferret !== undefined ? `FerretDB ${ferret}` : `MongoDB ${String(build["version"])}`
            return {
              transactions:
                ferret === undefined &&
                (setName !== undefined || sharded) &&
                hello["logicalSessionTimeoutMinutes"] != null,
              server: `${product} (${topology})`
            }
          },
          (e: unknown) => {
            gen.capabilities = undefined
            throw e
          }
        )
      }
      return gen.capabilities
    }

    // ---- transactions --------------------------------------------------------------------------------------
    const txCollection = <T extends Document>(b: Binding, gen: Generation, session: ClientSession, name: string) => {
      const c = collectionOf(b, gen, name) as unknown as Collection<T>
      const go = <A>(op: string, f: () => Promise<A>) =>
        Effect.tryPromise({ try: f, catch: (e) => fromUnknown(op, e, b.shared.secrets) })
      const out: TransactionCollection<T> = {
        name,
        insertOne: (doc) => go("insertOne", () => c.insertOne(doc, { session })),
        insertMany: (docs) =>
          go("insertMany", () => c.insertMany(docs as Array<OptionalUnlessRequiredId<T>>, { session })),
        findOne: (filter, o) => go("findOne", () => c.findOne(filter ?? {}, { ...o, session })),
        find: (filter, o) => go("find", () => c.find(filter ?? {}, { ...o, session }).toArray()),
        countDocuments: (filter) => go("countDocuments", () => c.countDocuments(filter ?? {}, { session })),
        updateOne: (filter, update, o) =>
          go("updateOne", () => c.updateOne(filter, update as UpdateFilter<T>, { ...o, session })),
        updateMany: (filter, update, o) =>
          go("updateMany", () => c.updateMany(filter, update as UpdateFilter<T>, { ...o, session })),
        replaceOne: (filter, replacement, o) =>
          go("replaceOne", () => c.replaceOne(filter, replacement, { ...o, session }) as Promise<UpdateResult<T>>),
        findOneAndUpdate: (filter, update, o) =>
          go("findOneAndUpdate", () =>
            c.findOneAndUpdate(filter, update as UpdateFilter<T>, { ...o, includeResultMetadata: false, session })
          ),
        deleteOne: (filter) => go("deleteOne", () => c.deleteOne(filter ?? {}, { session })),
        deleteMany: (filter) => go("deleteMany", () => c.deleteMany(filter ?? {}, { session })),
        aggregate: <B extends Document>(pipeline: ReadonlyArray<Document>) => {
          const refusal = crossDatabaseStage(pipeline, b.database)
          if (refusal !== undefined) return Effect.fail(crossDatabase("aggregate", refusal))
          return go("aggregate", () => c.aggregate<B>([...pipeline], { session }).toArray())
        }
      }
      return out
    }

    const transaction = <A, E, R>(
      body: (tx: MongoTransaction) => Effect.Effect<A, E, R>,
      txOptions?: TransactionOptions
    ): Effect.Effect<A, E | Fail, R> =>
      handle.runEffect<A, R>(OP.transaction, (b) =>
        Effect.gen(function* () {
          const s = b.shared
          const gen = s.gen
          const caps = yield* Effect.tryPromise({
            try: () => capabilitiesOf(gen),
            catch: (e) => fromUnknown("transaction", e, s.secrets)
          })
          if (!caps.transactions) {
            return yield* Effect.fail(
              refused(
                "transaction",
                "transactions_unsupported",
                `transactions need a MongoDB replica set or sharded cluster; this server is ${caps.server}`
              )
            )
          }
          const ctx = yield* Effect.context<R>()
          return yield* Effect.acquireUseRelease(
            Effect.sync(() => {
              gen.inflight++
              return gen.client.startSession()
            }),
            (session) => {
              const tx: MongoTransaction = { collection: (name) => txCollection(b, gen, session, name) }
              return Effect.tryPromise({
                try: (signal) =>
                  session.withTransaction(async () => {
                    const exit = await Effect.runPromiseExitWith(ctx)(body(tx), { signal })
                    if (exit._tag === "Success") return exit.value
                    // A transient driver error goes back to the driver as itself, so that withTransaction retries.
                    const failure = Cause.findErrorOption(exit.cause)
                    if (failure._tag === "Some" && failure.value instanceof MongoError) {
                      const origin = driverErrorOf(failure.value) as { hasErrorLabel?: (l: string) => boolean }
                      if (origin?.hasErrorLabel?.("TransientTransactionError") === true) throw origin
                    }
                    throw new BodyFailed(exit.cause)
                  }, txOptions),
                catch: (e) => (e instanceof BodyFailed ? e : fromUnknown("transaction", e, s.secrets))
              }).pipe(
                Effect.catch((e): Effect.Effect<never, MongoError> =>
                  e instanceof BodyFailed
                    ? (Effect.failCause(e.cause) as Effect.Effect<never, MongoError>)
                    : Effect.fail(e)
                )
              )
            },
            (session) =>
              Effect.promise(() => session.endSession().catch(() => undefined)).pipe(
                Effect.ensuring(Effect.sync(() => release(gen)))
              )
          )
        })
      ) as Effect.Effect<A, E | Fail, R>

    // ---- collections ---------------------------------------------------------------------------------------
    const views = new Map<string, MongoCollection<any, any, any, any>>()
    const schemaViews = new WeakMap<object, Map<string, MongoCollection<any, any, any, any>>>()

    const makeView = <T extends Document, A, R, D>(
      name: string,
      decode: Decode<A, R, D>
    ): MongoCollection<T, A, R, D> => {
      // Without a schema, results pass through as they are (no extra step on the hot path).
      const one = <E>(read: Effect.Effect<Document | null, E>): Effect.Effect<A | null, E | D, R> =>
        decode === undefined
          ? (read as Effect.Effect<A | null, E>)
          : Effect.flatMap(read, (doc) => (doc === null ? Effect.succeed(null) : decode(doc)))
      const many = <E>(read: Effect.Effect<Array<Document>, E>): Effect.Effect<Array<A>, E | D, R> =>
        decode === undefined
          ? (read as unknown as Effect.Effect<Array<A>, E>)
          : Effect.flatMap(read, (docs) => Effect.forEach(docs, decode))
      const aggregateCheck = (pipeline: ReadonlyArray<Document>) => (b: Binding) => {
        const stage = crossDatabaseStage(pipeline, b.database)
        return stage === undefined ? undefined : crossDatabase("aggregate", stage)
      }
      const schemaOf = (o: unknown): Decode<any, any, any> => {
        const schema = (o as { schema?: Schema.Top } | undefined)?.schema
        return schema === undefined ? undefined : (Schema.decodeUnknownEffect(schema as any) as any)
      }
      const withoutSchema = <O extends object>(o: O | undefined): O | undefined => {
        if (o === undefined || !("schema" in o)) return o
        const { schema: _schema, ...rest } = o as O & { schema?: unknown }
        return rest as O
      }
      const view: MongoCollection<T, A, R, D> = {
        name,
        insertOne: (doc, o) =>
          runOn(
            pick(OP.insertOne, o),
            name,
            false,
            o?.maxTimeMS,
            (c, signal) => c.insertOne(doc as Document, withLimits(o, signal, undefined)),
            { collection: name }
          ) as Effect.Effect<InsertOneResult<T>, Fail>,
        insertMany: (docs, o) =>
          runOn(
            pick(OP.insertMany, o),
            name,
            false,
            o?.maxTimeMS,
            (c, signal) => c.insertMany(docs as unknown as Array<Document>, withLimits(o, signal, undefined)),
            { collection: name }
          ) as Effect.Effect<InsertManyResult<T>, Fail>,
        findOne: (filter, o) =>
          one(
            runOn(
              OP.findOne,
              name,
              true,
              o?.maxTimeMS,
              (c, signal, maxTimeMS) => c.findOne(asFilter(filter), withLimits(o, signal, maxTimeMS)),
              { collection: name, filter }
            )
          ),
        find: (filter, o) =>
          many(
            runOn(
              OP.find,
              name,
              true,
              o?.maxTimeMS,
              (c, signal, maxTimeMS, gen) =>
                trackCursor(gen, c.find(asFilter(filter), withLimits(o, signal, maxTimeMS))).toArray(),
              { collection: name, filter }
            )
          ),
        stream: (filter, o) =>
          cursorStream(OP.find, name, (c, signal) => c.find(asFilter(filter), { ...o, signal }), decode, undefined),
        countDocuments: (filter, o) =>
          runOn(
            OP.countDocuments,
            name,
            true,
            o?.maxTimeMS,
            (c, signal, maxTimeMS) => c.countDocuments(asFilter(filter), withLimits(o, signal, maxTimeMS)),
            { collection: name, filter }
          ),
        distinct: (key, filter, o) =>
          runOn(
            OP.distinct,
            name,
            true,
            o?.maxTimeMS,
            (c, signal, maxTimeMS) => c.distinct(key, asFilter(filter), withLimits(o, signal, maxTimeMS)),
            { collection: name, filter }
          ) as Effect.Effect<Array<any>, Fail>,
        updateOne: (filter, update, o) =>
          runOn(
            pick(OP.updateOne, o),
            name,
            false,
            o?.maxTimeMS,
            (c, signal) =>
              c.updateOne(asFilter(filter), update as UpdateFilter<Document>, withLimits(o, signal, undefined)),
            { collection: name, filter }
          ) as Effect.Effect<UpdateResult<T>, Fail>,
        updateMany: (filter, update, o) =>
          runOn(
            pick(OP.updateMany, o),
            name,
            false,
            o?.maxTimeMS,
            (c, signal) =>
              c.updateMany(asFilter(filter), update as UpdateFilter<Document>, withLimits(o, signal, undefined)),
            { collection: name, filter }
          ) as Effect.Effect<UpdateResult<T>, Fail>,
        replaceOne: (filter, replacement, o) =>
          runOn(
            pick(OP.replaceOne, o),
            name,
            false,
            o?.maxTimeMS,
            (c, signal) => c.replaceOne(asFilter(filter), replacement, withLimits(o, signal, undefined)),
            { collection: name, filter }
          ) as Effect.Effect<UpdateResult<T>, Fail>,
        findOneAndUpdate: (filter, update, o) =>
          one(
            runOn(
              pick(OP.findOneAndUpdate, o),
              name,
              true,
              o?.maxTimeMS,
              (c, signal, maxTimeMS) =>
                c.findOneAndUpdate(asFilter(filter), update as UpdateFilter<Document>, {
                  ...withLimits(o, signal, maxTimeMS),
                  includeResultMetadata: false
                }),
              { collection: name, filter }
            )
          ),
        deleteOne: (filter, o) =>
          runOn(
            pick(OP.deleteOne, o),
            name,
            false,
            o?.maxTimeMS,
            (c, signal) => c.deleteOne(asFilter(filter), withLimits(o, signal, undefined)),
            { collection: name, filter }
          ),
        deleteMany: (filter, o) =>
          runOn(
            pick(OP.deleteMany, o),
            name,
            false,
            o?.maxTimeMS,
            (c, signal) => c.deleteMany(asFilter(filter), withLimits(o, signal, undefined)),
            { collection: name, filter }
          ),
        bulkWrite: (operations, o) =>
          runOn(pick(OP.bulkWrite, o), name, false, o?.maxTimeMS, (c, signal) =>
            c.bulkWrite(operations as Array<AnyBulkWriteOperation<Document>>, withLimits(o, signal, undefined))
          ),
        aggregate: ((pipeline: ReadonlyArray<Document>, o?: AggregateOptions & { schema?: Schema.Top }) => {
          const decodeAs = schemaOf(o)
          const run = Effect.suspend(() =>
            runOn(
              writesOutput(pipeline) ? OP.aggregateWrite : OP.aggregate,
              name,
              true,
              o?.maxTimeMS,
              (c, signal, maxTimeMS, gen) =>
                trackCursor(gen, c.aggregate([...pipeline], withLimits(withoutSchema(o), signal, maxTimeMS))).toArray(),
              { collection: name, pipeline }
            )
          )
          const checked = Effect.flatMap(handle.binding, ({ binding }) => {
            const refusal = aggregateCheck(pipeline)(binding)
            return refusal === undefined ? run : Effect.fail(refusal)
          })
          return decodeAs === undefined ? checked : Effect.flatMap(checked, (docs) => Effect.forEach(docs, decodeAs))
        }) as MongoCollection<T, A, R, D>["aggregate"],
        aggregateStream: ((pipeline: ReadonlyArray<Document>, o?: AggregateOptions & { schema?: Schema.Top }) =>
          cursorStream(
            writesOutput(pipeline) ? OP.aggregateWrite : OP.aggregate,
            name,
            (c, signal) => c.aggregate([...pipeline], { ...withoutSchema(o), signal }),
            schemaOf(o),
            aggregateCheck(pipeline)
          )) as MongoCollection<T, A, R, D>["aggregateStream"],
        createIndex: (index, o) =>
          runOn(OP.createIndex, name, false, undefined, (c, signal) =>
            c.createIndex(index, withLimits(o, signal, undefined))
          ),
        createIndexes: (indexes, o) =>
          runOn(OP.createIndexes, name, false, undefined, (c, signal) =>
            c.createIndexes(indexes as Array<IndexDescription>, withLimits(o, signal, undefined))
          ),
        listIndexes: () =>
          runOn(OP.listIndexes, name, true, undefined, (c, signal, maxTimeMS) =>
            c.listIndexes(withLimits({} as ListIndexesOptions, signal, maxTimeMS)).toArray()
          ),
        dropIndex: (index) =>
          runOn(OP.dropIndex, name, false, undefined, (c, signal) =>
            c.dropIndex(index, { signal } as DropIndexesOptions).then(() => undefined)
          )
      }
      return view
    }

    const collection = (name: string, schema?: DocumentSchema): MongoCollection<any, any, any, any> => {
      if (schema === undefined) {
        let v = views.get(name)
        if (v === undefined) {
          if (views.size >= 1_000) views.clear()
          v = makeView(name, undefined)
          views.set(name, v)
        }
        return v
      }
      let byName = schemaViews.get(schema)
      if (byName === undefined) {
        byName = new Map()
        schemaViews.set(schema, byName)
      }
      let v = byName.get(name)
      if (v === undefined) {
        if (byName.size >= 1_000) byName.clear()
        v = makeView(name, Schema.decodeUnknownEffect(schema) as Decode<any, any, any>)
        byName.set(name, v)
      }
      return v
    }
    const healthCheck: Effect.Effect<boolean> = handle.binding.pipe(
      Effect.flatMap(({ binding: b }) =>
        Effect.tryPromise((signal) => dbOf(b, b.shared.gen).command({ ping: 1 }, { signal }))
      ),
      Effect.timeout(healthTimeout),
      Effect.as(true),
      Effect.catchCause(() => Effect.succeed(false))
    )

    return MongoEngine.of({
      handle,
      collection: collection as MongoEngine["Service"]["collection"],
      transaction,
      healthCheck,
      poolStats: Effect.map(handle.binding, ({ binding }) => poolStatsOf(binding.shared))
    })
  })

const asFilter = (filter: unknown): Filter<Document> => (filter ?? {}) as Filter<Document>

const callersError: Classification = { infrastructure: false, errorType: "other", sent: false }

const crossDatabase = (operation: string, stage: string) =>
  refused(operation, "forbidden", `${stage} reaches another database; a project's pipelines stay in its own database`)

/**
 * A stream's cursor, closed once and only when no batch of it is on its way.
 *
 * The driver cleans a cursor up again when a batch arrives for a cursor being closed, and that second clean-up ends
 * the cursor's session: a killCursors still waiting for a connection then fails unsent, and the server keeps the
 * cursor for its idle timeout. So an abandoned batch (its attempt timed out, the reader was interrupted) is left to
 * finish, and the cursor is closed after it; the stream's finalizer waits for that close (at most 2 seconds, after
 * which it completes on its own) so that once a stream has stopped, the server has answered the kill.
 */
class StreamCursor {
  cursor: AbstractCursor | undefined = undefined
  /** The batch on its way, if any. */
  batch: Promise<unknown> | undefined = undefined
  private closing: Promise<void> | undefined = undefined
  readonly close: Effect.Effect<void> = Effect.suspend(() =>
    Effect.asVoid(
      Effect.timeoutOption(
        Effect.promise(() => this.start()),
        "2 seconds"
      )
    )
  )
  private start(): Promise<void> {
    if (this.closing === undefined) {
      const close = () => {
        const cursor = this.cursor
        // A cursor the server ran out of was closed by the driver, without a kill.
        return cursor === undefined || cursor.closed ? undefined : cursor.close()
      }
      this.closing = (this.batch ?? Promise.resolve()).then(close, close).then(
        () => undefined,
        () => undefined
      )
    }
    return this.closing
  }
}

// A transaction body failed with its own error (or a defect): carried through the driver's retry loop unchanged.
class BodyFailed {
  readonly cause: Cause.Cause<unknown>
  constructor(cause: Cause.Cause<unknown>) {
    this.cause = cause
  }
}

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
