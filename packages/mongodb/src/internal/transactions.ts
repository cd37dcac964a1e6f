/**
 * Transactions: a session and the driver's `withTransaction` (which retries the body on transient transaction
 * errors) as one guarded, non-idempotent operation. Whether the server runs transactions at all is asked once per
 * client (`hello` and `buildInfo`): a standalone server or FerretDB is refused before anything starts.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import type {
  ClientSession,
  Collection,
  Document,
  OptionalUnlessRequiredId,
  TransactionOptions,
  UpdateFilter,
  UpdateResult
} from "mongodb"
import type { GuardError } from "@tenantpool/core/Errors"
import type { MongoTransaction, TransactionCollection } from "../MongoCollection.ts"
import { driverErrorOf, fromUnknown, MongoError, refused } from "../MongoError.ts"
import { type Binding, collectionOf } from "./binding.ts"
import type { Handle } from "./calls.ts"
import { OP } from "./operations.ts"
import { crossDatabaseRefusal } from "./pipeline.ts"
import type { Generation } from "./targetClients.ts"

/** What the engine found out about a server once (per client): whether it runs transactions, and what it is. */
interface Capabilities {
  readonly transactions: boolean
  readonly server: string
}

// Per client, asked once (a failed question is asked again next time).
const capabilities = new WeakMap<Generation, Promise<Capabilities>>()

const capabilitiesOf = (gen: Generation): Promise<Capabilities> => {
  let known = capabilities.get(gen)
  if (known === undefined) {
    const admin = gen.client.db("admin")
    known = Promise.all([admin.command({ hello: 1 }), admin.command({ buildInfo: 1 })]).then(
      ([hello, build]) => {
        const ferret = typeof build["ferretdbVersion"] === "string" ? build["ferretdbVersion"] : undefined
        const setName = typeof hello["setName"] === "string" ? hello["setName"] : undefined
        const sharded = hello["msg"] === "isdbgrid"
        const topology =
          setName !== undefined ? `replica set ${setName}` : sharded ? "sharded cluster" : "standalone server"
        const product = ferret !== undefined ? `FerretDB ${ferret}` : `MongoDB ${String(build["version"])}`
        return {
          transactions:
            ferret === undefined && (setName !== undefined || sharded) && hello["logicalSessionTimeoutMinutes"] != null,
          server: `${product} (${topology})`
        }
      },
      (e: unknown) => {
        capabilities.delete(gen)
        throw e
      }
    )
    capabilities.set(gen, known)
  }
  return known
}

const txCollection = <T extends Document>(
  b: Binding,
  gen: Generation,
  session: ClientSession,
  name: string
): TransactionCollection<T> => {
  const c = collectionOf(b, gen, name) as unknown as Collection<T>
  const go = <A>(op: string, f: () => Promise<A>) =>
    Effect.tryPromise({ try: f, catch: (e) => fromUnknown(op, e, b.clients.secrets) })
  return {
    name,
    insertOne: (doc) => go("insertOne", () => c.insertOne(doc, { session })),
    insertMany: (docs) => go("insertMany", () => c.insertMany(docs as Array<OptionalUnlessRequiredId<T>>, { session })),
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
      const refusal = crossDatabaseRefusal(pipeline, b.database)
      if (refusal !== undefined) return Effect.fail(refusal)
      return go("aggregate", () => c.aggregate<B>([...pipeline], { session }).toArray())
    }
  }
}

// A transaction body failed with its own error (or a defect): carried through the driver's retry loop unchanged.
class BodyFailed {
  readonly cause: Cause.Cause<unknown>
  constructor(cause: Cause.Cause<unknown>) {
    this.cause = cause
  }
}

/** Runs `body` on a session of the binding's client, in `withTransaction`. */
const inSession = <A, E, R>(
  b: Binding,
  gen: Generation,
  session: ClientSession,
  body: (tx: MongoTransaction) => Effect.Effect<A, E, R>,
  txOptions: TransactionOptions | undefined
): Effect.Effect<A, MongoError, R> =>
  Effect.flatMap(Effect.context<R>(), (ctx) => {
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
      catch: (e) => (e instanceof BodyFailed ? e : fromUnknown("transaction", e, b.clients.secrets))
    }).pipe(
      Effect.catch((e): Effect.Effect<never, MongoError> =>
        e instanceof BodyFailed ? (Effect.failCause(e.cause) as Effect.Effect<never, MongoError>) : Effect.fail(e)
      )
    )
  })

/** A guarded transaction for the current project (see `MongoEngine.transaction`). @internal */
export const transaction = <A, E, R>(
  handle: Handle,
  body: (tx: MongoTransaction) => Effect.Effect<A, E, R>,
  txOptions?: TransactionOptions
): Effect.Effect<A, E | MongoError | GuardError, R> =>
  handle.runEffect<A, R>(OP.transaction, (b) =>
    Effect.gen(function* () {
      const clients = b.clients
      const gen = clients.current
      const caps = yield* Effect.tryPromise({
        try: () => capabilitiesOf(gen),
        catch: (e) => fromUnknown("transaction", e, clients.secrets)
      })
      if (!caps.transactions) {
        return yield* refused(
          "transaction",
          "transactions_unsupported",
          `transactions need a MongoDB replica set or sharded cluster; this server is ${caps.server}`
        )
      }
      return yield* Effect.acquireUseRelease(
        Effect.sync(() => {
          gen.inflight++
          return gen.client.startSession()
        }),
        (session) => inSession(b, gen, session, body, txOptions),
        (session) =>
          Effect.ensuring(
            Effect.promise(() => session.endSession().catch(() => undefined)),
            Effect.sync(() => clients.release(gen))
          )
      )
    })
  ) as Effect.Effect<A, E | MongoError | GuardError, R>
