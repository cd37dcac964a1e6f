/**
 * Transactions: a session and the driver's `withTransaction` (which retries the body on transient transaction
 * errors) as one guarded, non-idempotent operation. Whether the server runs transactions at all is asked once per
 * client (`hello` and `buildInfo`): a standalone server or FerretDB is refused before anything starts.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import type { ClientSession, Collection, Document, TransactionOptions, UpdateFilter, UpdateResult } from "mongodb"
import type { GuardError, ProtectionError } from "@tenantpool/core/Errors"
import * as Protections from "@tenantpool/core/Protections"
import type { MongoTransaction, TransactionCollection } from "../MongoCollection.ts"
import { driverErrorOf, fromUnknown, MongoError, refused } from "../MongoError.ts"
import { type Binding, collectionOf } from "./binding.ts"
import type { Handle } from "./calls.ts"
import { OP } from "./operations.ts"
import type { Checked } from "./options.ts"
import { invalid } from "./documents.ts"
import { otherDatabase } from "./pipeline.ts"
import * as Req from "./requests.ts"
import { resources } from "./signal.ts"
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

/** What the protections see of an operation in a transaction (as of one outside: see `views.ts`). */
interface TxDetail extends Protections.ProtectionDetail {
  readonly documents?: ReadonlyArray<unknown> | undefined
}

/** A collection bound to a transaction's session. @internal */
export const txCollection = <T extends Document>(
  b: Binding,
  gen: Generation,
  session: ClientSession,
  name: string
): TransactionCollection<T> => {
  const nameRefusal = Req.collectionName(name)
  // Arguments are checked and copied as outside a transaction; the session is the transaction's, never the caller's.
  const opts = (checked: Checked) => ({ ...checked.driver, session })
  // The installed protections check every operation of the body as they check one outside a transaction (the
  // tier's rate limit and analyzer: server-side JavaScript on FREE is refused here too), before it is sent.
  const run = <A>(
    op: string,
    prepare: () => readonly [call: (c: Collection<Document>) => Promise<A>, detail: TxDetail]
  ): Effect.Effect<A, MongoError | ProtectionError> =>
    nameRefusal !== undefined
      ? Effect.fail(Req.fromRefusal(op, nameRefusal))
      : Req.refusing(op, () => {
          const [call, detail] = prepare()
          return Effect.andThen(
            Protections.check("mongodb", op, detail),
            Effect.tryPromise({
              try: () => call(collectionOf(b, gen, name)),
              catch: (e) => fromUnknown(op, e, b.clients.secrets)
            })
          )
        })
  const about = (filter?: Document, ...documents: ReadonlyArray<unknown>): TxDetail =>
    documents.length === 0 ? { collection: name, filter } : { collection: name, filter, documents }
  return {
    name,
    insertOne: (doc) =>
      run("insertOne", () => {
        const d = Req.documentOf(doc)
        return [(c) => c.insertOne(d, { session }), about()]
      }),
    insertMany: (docs) =>
      run("insertMany", () => {
        const d = Req.documentsOf(docs)
        return [(c) => c.insertMany(d, { session }), about()]
      }),
    findOne: (filter, o) =>
      run("findOne", () => {
        const f = Req.filterOf(filter)
        const checked = Req.optionsOf("findOne", o)
        return [(c) => c.findOne(f, opts(checked)), about(f, ...(checked.documents ?? []))]
      }),
    find: (filter, o) =>
      run("find", () => {
        const f = Req.filterOf(filter)
        const checked = Req.optionsOf("find", o)
        return [(c) => c.find(f, opts(checked)).toArray(), about(f, ...(checked.documents ?? []))]
      }),
    countDocuments: (filter) =>
      run("countDocuments", () => {
        const f = Req.filterOf(filter)
        return [(c) => c.countDocuments(f, { session }), about(f)]
      }),
    updateOne: (filter, update, o) =>
      run("updateOne", () => {
        const f = Req.filterOf(filter)
        const u = Req.updateOf(update)
        const checked = Req.optionsOf("updateOne", o)
        return [
          (c) => c.updateOne(f, u as UpdateFilter<Document>, opts(checked)),
          about(f, ...(checked.documents ?? []), u)
        ]
      }),
    updateMany: (filter, update, o) =>
      run("updateMany", () => {
        const f = Req.filterOf(filter)
        const u = Req.updateOf(update)
        const checked = Req.optionsOf("updateMany", o)
        return [
          (c) => c.updateMany(f, u as UpdateFilter<Document>, opts(checked)),
          about(f, ...(checked.documents ?? []), u)
        ]
      }),
    replaceOne: (filter, replacement, o) =>
      run("replaceOne", () => {
        const f = Req.filterOf(filter)
        const r = Req.replacementOf(replacement)
        const checked = Req.optionsOf("replaceOne", o)
        return [
          (c) => c.replaceOne(f, r, opts(checked)) as Promise<UpdateResult<any>>,
          about(f, ...(checked.documents ?? []))
        ]
      }),
    findOneAndUpdate: (filter, update, o) =>
      run("findOneAndUpdate", () => {
        const f = Req.filterOf(filter)
        const u = Req.updateOf(update)
        const checked = Req.optionsOf("findOneAndUpdate", o)
        return [
          (c) => c.findOneAndUpdate(f, u as UpdateFilter<Document>, { ...opts(checked), includeResultMetadata: false }),
          about(f, ...(checked.documents ?? []), u)
        ]
      }),
    deleteOne: (filter) =>
      run("deleteOne", () => {
        const f = Req.filterOf(filter)
        return [(c) => c.deleteOne(f, { session }), about(f)]
      }),
    deleteMany: (filter) =>
      run("deleteMany", () => {
        const f = Req.filterOf(filter)
        return [(c) => c.deleteMany(f, { session }), about(f)]
      }),
    aggregate: (pipeline) =>
      run("aggregate", () => {
        const p = Req.pipelineOf(pipeline)
        const other = otherDatabase(p.databases, b.database)
        if (other !== undefined) throw other
        return [(c) => c.aggregate(p.pipeline, { session }).toArray(), { collection: name, pipeline: p.pipeline }]
      })
  } as TransactionCollection<T>
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
  options?: unknown
): Effect.Effect<A, E | MongoError | GuardError, R> =>
  Req.refusing("transaction", () => {
    if (typeof body !== "function") throw invalid("body", "must be a function of the transaction")
    const txOptions = Req.optionsOf("transaction", options).driver as TransactionOptions | undefined
    return handle.runEffect<A, R>(OP.transaction, (b, signal) =>
      Effect.gen(function* () {
        const clients = b.clients
        const gen = clients.current
        // Asking the server what it is changes nothing; the transaction itself may apply once it starts.
        signal.waitingFor(resources.selection)
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
        signal.sending()
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
  })
