/**
 * Views: the `MongoCollection` objects the engine hands out. A view is made once per collection name (and schema)
 * and serves every project: each operation finds the current project's binding through the guard, then its
 * database on its target's client. Without a schema, results pass through as the driver returns them (no extra step
 * on the per-operation path); with one, reads decode with it.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type {
  AggregateOptions,
  AnyBulkWriteOperation,
  DeleteOptions,
  Document,
  DropIndexesOptions,
  Filter,
  IndexDescription,
  InsertManyResult,
  InsertOneResult,
  ListIndexesOptions,
  UpdateFilter,
  UpdateOptions,
  UpdateResult
} from "mongodb"
import type { GuardError } from "@tenantpool/core/Errors"
import type { ProtectionDetail } from "@tenantpool/core/Protections"
import type { DocumentSchema, MongoCollection, WriteGuardOptions } from "../MongoCollection.ts"
import type { MongoError } from "../MongoError.ts"
import { type Call, type Handle, runOn, withLimits } from "./calls.ts"
import { cursorStream, type Decode } from "./cursors.ts"
import { OP, type MongoOperation, pick } from "./operations.ts"
import { crossDatabaseRefusal, writesOutput } from "./pipeline.ts"

type Fail = MongoError | GuardError
type AnyView = MongoCollection<any, any, any, any>
type WithMaxTime = { readonly maxTimeMS?: number | undefined } | undefined

// At most this many views per schema (and without one) are kept; past it the cache starts over.
const maxViews = 1_000

const asFilter = (filter: unknown): Filter<Document> => (filter ?? {}) as Filter<Document>

const schemaOf = (o: unknown): Decode<any, any, any> => {
  const schema = (o as { schema?: Schema.Top } | undefined)?.schema
  return schema === undefined ? undefined : (Schema.decodeUnknownEffect(schema as any) as any)
}

const withoutSchema = <O extends object>(o: O | undefined): O | undefined => {
  if (o === undefined || !("schema" in o)) return o
  const { schema: _schema, ...rest } = o as O & { schema?: unknown }
  return rest as O
}

const aggregateOp = (pipeline: ReadonlyArray<Document>): MongoOperation =>
  writesOutput(pipeline) ? OP.aggregateWrite : OP.aggregate

/** An aggregation read to the end, refused before sending when it reaches another database. */
const aggregate = (
  handle: Handle,
  name: string,
  pipeline: ReadonlyArray<Document>,
  o: (AggregateOptions & { schema?: Schema.Top }) | undefined
): Effect.Effect<Array<any>, any, any> => {
  const decodeAs = schemaOf(o)
  const run = Effect.suspend(() =>
    runOn(
      handle,
      aggregateOp(pipeline),
      name,
      true,
      o?.maxTimeMS,
      (c, signal, maxTimeMS, gen) =>
        gen.track(c.aggregate([...pipeline], withLimits(withoutSchema(o), signal, maxTimeMS))).toArray(),
      { collection: name, pipeline }
    )
  )
  const checked = Effect.flatMap(handle.binding, ({ binding }) => {
    const refusal = crossDatabaseRefusal(pipeline, binding.database)
    return refusal === undefined ? run : Effect.fail(refusal)
  })
  return decodeAs === undefined ? checked : Effect.flatMap(checked, (docs) => Effect.forEach(docs, decodeAs))
}

const aggregateStream = (
  handle: Handle,
  name: string,
  pipeline: ReadonlyArray<Document>,
  o: (AggregateOptions & { schema?: Schema.Top }) | undefined
) =>
  cursorStream(
    handle,
    aggregateOp(pipeline),
    name,
    (c, signal) => c.aggregate([...pipeline], { ...withoutSchema(o), signal }),
    schemaOf(o),
    (b) => crossDatabaseRefusal(pipeline, b.database)
  )

/** The view of collection `name`, its reads decoded with `decode` when there is one. @internal */
export const makeView = <T extends Document, A, R, D>(
  handle: Handle,
  name: string,
  decode: Decode<A, R, D>
): MongoCollection<T, A, R, D> => {
  const one = <E>(read: Effect.Effect<Document | null, E>): Effect.Effect<A | null, E | D, R> =>
    decode === undefined
      ? (read as Effect.Effect<A | null, E>)
      : Effect.flatMap(read, (doc) => (doc === null ? Effect.succeed(null) : decode(doc)))
  const many = <E>(read: Effect.Effect<Array<Document>, E>): Effect.Effect<Array<A>, E | D, R> =>
    decode === undefined
      ? (read as unknown as Effect.Effect<Array<A>, E>)
      : Effect.flatMap(read, (docs) => Effect.forEach(docs, decode))
  // A read carries `maxTimeMS`; a write does not (unless the caller sets one) and is retried only when declared
  // idempotent.
  const read = <X>(op: MongoOperation, o: WithMaxTime, call: Call<X>, detail?: ProtectionDetail) =>
    runOn(handle, op, name, true, o?.maxTimeMS, call, detail)
  const write = <X>(
    ops: readonly [MongoOperation, MongoOperation],
    o: (WriteGuardOptions & { readonly maxTimeMS?: number | undefined }) | undefined,
    call: (c: Parameters<Call<X>>[0], signal: AbortSignal) => Promise<X>,
    detail?: ProtectionDetail
  ) => runOn(handle, pick(ops, o), name, false, o?.maxTimeMS, call, detail)
  // `updateOne` / `updateMany` and `deleteOne` / `deleteMany` differ by the driver method only.
  const updates =
    (ops: readonly [MongoOperation, MongoOperation], method: "updateOne" | "updateMany") =>
    (
      filter: Filter<T>,
      update: UpdateFilter<T> | ReadonlyArray<Document>,
      o?: UpdateOptions & WriteGuardOptions
    ): Effect.Effect<UpdateResult<T>, Fail> =>
      write(
        ops,
        o,
        (c, signal) => c[method](asFilter(filter), update as UpdateFilter<Document>, withLimits(o, signal, undefined)),
        { collection: name, filter }
      ) as Effect.Effect<UpdateResult<T>, Fail>
  const deletes =
    (ops: readonly [MongoOperation, MongoOperation], method: "deleteOne" | "deleteMany") =>
    (filter?: Filter<T>, o?: DeleteOptions & WriteGuardOptions) =>
      write(ops, o, (c, signal) => c[method](asFilter(filter), withLimits(o, signal, undefined)), {
        collection: name,
        filter
      })
  return {
    name,
    insertOne: (doc, o) =>
      write(OP.insertOne, o, (c, signal) => c.insertOne(doc as Document, withLimits(o, signal, undefined)), {
        collection: name
      }) as Effect.Effect<InsertOneResult<T>, Fail>,
    insertMany: (docs, o) =>
      write(
        OP.insertMany,
        o,
        (c, signal) => c.insertMany(docs as unknown as Array<Document>, withLimits(o, signal, undefined)),
        { collection: name }
      ) as Effect.Effect<InsertManyResult<T>, Fail>,
    findOne: (filter, o) =>
      one(
        read(OP.findOne, o, (c, signal, maxTimeMS) => c.findOne(asFilter(filter), withLimits(o, signal, maxTimeMS)), {
          collection: name,
          filter
        })
      ),
    find: (filter, o) =>
      many(
        read(
          OP.find,
          o,
          (c, signal, maxTimeMS, gen) =>
            gen.track(c.find(asFilter(filter), withLimits(o, signal, maxTimeMS))).toArray(),
          { collection: name, filter }
        )
      ),
    stream: (filter, o) =>
      cursorStream(handle, OP.find, name, (c, signal) => c.find(asFilter(filter), { ...o, signal }), decode, undefined),
    countDocuments: (filter, o) =>
      read(
        OP.countDocuments,
        o,
        (c, signal, maxTimeMS) => c.countDocuments(asFilter(filter), withLimits(o, signal, maxTimeMS)),
        { collection: name, filter }
      ),
    distinct: (key, filter, o) =>
      read(
        OP.distinct,
        o,
        (c, signal, maxTimeMS) => c.distinct(key, asFilter(filter), withLimits(o, signal, maxTimeMS)),
        { collection: name, filter }
      ) as Effect.Effect<Array<any>, Fail>,
    updateOne: updates(OP.updateOne, "updateOne"),
    updateMany: updates(OP.updateMany, "updateMany"),
    replaceOne: (filter, replacement, o) =>
      write(
        OP.replaceOne,
        o,
        (c, signal) => c.replaceOne(asFilter(filter), replacement, withLimits(o, signal, undefined)),
        { collection: name, filter }
      ) as Effect.Effect<UpdateResult<T>, Fail>,
    findOneAndUpdate: (filter, update, o) =>
      one(
        runOn(
          handle,
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
    deleteOne: deletes(OP.deleteOne, "deleteOne"),
    deleteMany: deletes(OP.deleteMany, "deleteMany"),
    bulkWrite: (operations, o) =>
      write(OP.bulkWrite, o, (c, signal) =>
        c.bulkWrite(operations as Array<AnyBulkWriteOperation<Document>>, withLimits(o, signal, undefined))
      ),
    aggregate: ((pipeline: ReadonlyArray<Document>, o?: AggregateOptions & { schema?: Schema.Top }) =>
      aggregate(handle, name, pipeline, o)) as MongoCollection<T, A, R, D>["aggregate"],
    aggregateStream: ((pipeline: ReadonlyArray<Document>, o?: AggregateOptions & { schema?: Schema.Top }) =>
      aggregateStream(handle, name, pipeline, o)) as MongoCollection<T, A, R, D>["aggregateStream"],
    createIndex: (index, o) =>
      runOn(handle, OP.createIndex, name, false, undefined, (c, signal) =>
        c.createIndex(index, withLimits(o, signal, undefined))
      ),
    createIndexes: (indexes, o) =>
      runOn(handle, OP.createIndexes, name, false, undefined, (c, signal) =>
        c.createIndexes(indexes as Array<IndexDescription>, withLimits(o, signal, undefined))
      ),
    listIndexes: () =>
      read(OP.listIndexes, undefined, (c, signal, maxTimeMS) =>
        c.listIndexes(withLimits({} as ListIndexesOptions, signal, maxTimeMS)).toArray()
      ),
    dropIndex: (index) =>
      runOn(handle, OP.dropIndex, name, false, undefined, (c, signal) =>
        c.dropIndex(index, { signal } as DropIndexesOptions).then(() => undefined)
      )
  }
}

/** The views of one engine, made on first use and kept (per schema, by name). @internal */
export class Views {
  private readonly handle: Handle
  private readonly plain = new Map<string, AnyView>()
  private readonly bySchema = new WeakMap<object, Map<string, AnyView>>()
  constructor(handle: Handle) {
    this.handle = handle
  }

  collection(name: string, schema?: DocumentSchema): AnyView {
    let byName = this.plain
    if (schema !== undefined) {
      let forSchema = this.bySchema.get(schema)
      if (forSchema === undefined) {
        forSchema = new Map()
        this.bySchema.set(schema, forSchema)
      }
      byName = forSchema
    }
    let view = byName.get(name)
    if (view === undefined) {
      if (byName.size >= maxViews) byName.clear()
      const decode = schema === undefined ? undefined : (Schema.decodeUnknownEffect(schema) as Decode<any, any, any>)
      view = makeView(this.handle, name, decode)
      byName.set(name, view)
    }
    return view
  }
}
