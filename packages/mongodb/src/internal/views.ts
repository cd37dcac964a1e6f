/**
 * Views: the `MongoCollection` objects the engine hands out. A view is made once per collection name (and schema)
 * and serves every project: each operation checks and copies its arguments (`requests.ts`: bad input fails with a
 * `MongoError` naming it, before the guard), then finds the current project's binding through the guard, then its
 * database on its target's client. What the driver gets is the checked copy, and what the protections check too.
 * Without a schema, results pass through as the driver returns them; with one, reads decode with it.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import type { Document } from "mongodb"
import type { ProtectionDetail } from "@tenantpool/core/Protections"
import type { DocumentSchema, MongoCollection } from "../MongoCollection.ts"
import type { Binding } from "./binding.ts"
import { type Call, type Handle, runOn, withLimits } from "./calls.ts"
import { cursorStream, type Decode, type Open, readAll } from "./cursors.ts"
import type { FlightSignal } from "./signal.ts"
import { invalid, type Refusal } from "./documents.ts"
import { OP, type MongoOperation, pick } from "./operations.ts"
import type { Checked } from "./options.ts"
import { otherDatabase } from "./pipeline.ts"
import * as Req from "./requests.ts"

type AnyView = MongoCollection<any, any, any, any>
type Any = Effect.Effect<any, any, any>

// At most this many views per schema (and without one) are kept; past it the cache starts over.
const maxViews = 1_000

const schemaKeys = ["schema"] as const

// `Schema.isSchema` of a value whose traps throw: not a schema.
const isSchema = (u: unknown): u is Schema.Top => {
  try {
    return Schema.isSchema(u)
  } catch {
    return false
  }
}

const schemaOf = (o: unknown): Decode<any, any, any> => {
  let schema: unknown
  try {
    schema = (o as { schema?: Schema.Top } | null | undefined)?.schema
  } catch {
    throw Req.unreadable("options.schema")
  }
  if (schema === undefined) return undefined
  if (!isSchema(schema)) throw invalid("options.schema", "must be a Schema codec")
  return Schema.decodeUnknownEffect(schema as any) as any
}

/**
 * What the protections see of a call: the collection, the filter or pipeline (explained), and the other documents
 * it sends (updates, projections, `let`, array filters), checked for server-side JavaScript by the MongoDB analyzer.
 */
interface Detail extends ProtectionDetail {
  readonly documents?: ReadonlyArray<unknown> | undefined
}

const detailOf = (
  collection: string,
  filter: Document | undefined,
  more: ReadonlyArray<unknown> | undefined,
  extra?: unknown
): Detail => {
  const documents = extra === undefined ? more : more === undefined ? [extra] : [...more, extra]
  return documents === undefined ? { collection, filter } : { collection, filter, documents }
}

/**
 * A stream's cursor options: its server time is bounded by the tier deadline (the lease's bound) or the caller's
 * shorter `maxTimeMS`, for the cursor as a whole.
 */
const streamOptions = (c: Checked, signal: FlightSignal, b: Binding): Document => ({
  ...c.driver,
  signal,
  maxTimeMS: c.maxTimeMS === undefined ? b.deadlineMS : Math.min(c.maxTimeMS, b.deadlineMS)
})

/** Fails an operation whose pipeline names another database than the project's own. */
const ownDatabaseOnly = (handle: Handle, operation: string, databases: ReadonlyMap<string, string>, run: Any): Any => {
  if (databases.size === 0) return run
  return Effect.flatMap(handle.binding, ({ binding }) => {
    const r = otherDatabase(databases, binding.database)
    return r === undefined ? run : Effect.fail(Req.fromRefusal(operation, r))
  })
}

/** What every operation of a view uses: its collection, its decoder, the guard, and how calls are made. */
class ViewContext {
  readonly handle: Handle
  readonly name: string
  readonly decode: Decode<any, any, any>
  private readonly nameRefusal: Refusal | undefined
  constructor(handle: Handle, name: string, decode: Decode<any, any, any>, nameRefusal: Refusal | undefined) {
    this.handle = handle
    this.name = name
    this.decode = decode
    this.nameRefusal = nameRefusal
  }
  one(read: Any): Any {
    const decode = this.decode
    return decode === undefined
      ? read
      : Effect.flatMap(read, (doc) => (doc === null ? Effect.succeed(null) : decode(doc)))
  }
  many(read: Any, as: Decode<any, any, any> = this.decode): Any {
    return as === undefined ? read : Effect.flatMap(read, (docs: Array<Document>) => Effect.forEach(docs, as))
  }
  /** Every operation: the collection name first, then its own arguments, all before the guard. */
  op(operation: string, build: () => Any): any {
    const refusal = this.nameRefusal
    return refusal !== undefined ? Effect.fail(Req.fromRefusal(operation, refusal)) : Req.refusing(operation, build)
  }
  /** A stream's arguments are checked when it is made, like a call's; a refusal is the stream's failure. */
  streamOp(operation: string, build: () => Any): any {
    return Stream.unwrap(this.op(operation, build))
  }
  /** A read carries `maxTimeMS`. */
  read<X>(o: MongoOperation, checked: Checked, call: Call<X>, detail?: ProtectionDetail) {
    return runOn(this.handle, o, this.name, true, checked.maxTimeMS, call, detail)
  }
  /** A write carries no `maxTimeMS` (unless its options allow one), and is retried only when declared idempotent. */
  write<X>(ops: readonly [MongoOperation, MongoOperation], checked: Checked, call: Call<X>, detail?: ProtectionDetail) {
    return runOn(this.handle, pick(ops, checked.idempotent), this.name, false, checked.maxTimeMS, call, detail)
  }
}

// `updateOne` / `updateMany` and `deleteOne` / `deleteMany` differ by the driver method only.
const updates =
  (x: ViewContext, ops: readonly [MongoOperation, MongoOperation], method: "updateOne" | "updateMany") =>
  (filter: unknown, update: unknown, o?: unknown) =>
    x.op(method, () => {
      const f = Req.filterOf(filter)
      const u = Req.updateOf(update)
      const c = Req.optionsOf(method, o)
      return x.write(
        ops,
        c,
        (coll, fl) => coll[method](f, u as any, withLimits(c.driver, fl, undefined)),
        detailOf(x.name, f, c.documents, u)
      )
    })

const deletes =
  (x: ViewContext, ops: readonly [MongoOperation, MongoOperation], method: "deleteOne" | "deleteMany") =>
  (filter?: unknown, o?: unknown) =>
    x.op(method, () => {
      const f = Req.filterOf(filter)
      const c = Req.optionsOf(method, o)
      return x.write(
        ops,
        c,
        (coll, fl) => coll[method](f, withLimits(c.driver, fl, undefined)),
        detailOf(x.name, f, c.documents)
      )
    })

/** An aggregation, read to the end or as a stream; one that names another database than the project's is refused. */
const aggregation = (x: ViewContext, pipeline: unknown, o: unknown, stream: boolean): Any => {
  const as = schemaOf(o) ?? (stream ? x.decode : undefined)
  const p = Req.pipelineOf(pipeline)
  const c = Req.optionsOf("aggregate", o, schemaKeys)
  const operation = p.writes ? OP.aggregateWrite : OP.aggregate
  const detail: Detail = { collection: x.name, pipeline: p.pipeline, documents: c.documents }
  if (stream) {
    const open: Open = (coll, signal, b) => coll.aggregate(p.pipeline, streamOptions(c, signal, b))
    const check = (b: Binding) => {
      const r = otherDatabase(p.databases, b.database)
      return r === undefined ? undefined : Req.fromRefusal("aggregate", r)
    }
    return Effect.succeed(cursorStream(x.handle, operation, x.name, open, as, detail, check))
  }
  const run = runOn(
    x.handle,
    operation,
    x.name,
    true,
    c.maxTimeMS,
    (_, fl, maxTimeMS) =>
      readAll(fl, x.name, "aggregate", (cc) => cc.aggregate(p.pipeline, withLimits(c.driver, fl, maxTimeMS))),
    detail
  )
  return x.many(ownDatabaseOnly(x.handle, "aggregate", p.databases, run), as)
}

/** The reads: one document, all of them, a stream, counts and distinct values. */
const reads = (x: ViewContext): Pick<AnyView, "findOne" | "find" | "stream" | "countDocuments" | "distinct"> => ({
  findOne: (filter, o) =>
    x.op("findOne", () => {
      const f = Req.filterOf(filter)
      const c = Req.optionsOf("findOne", o)
      return x.one(
        x.read(
          OP.findOne,
          c,
          (coll, fl, maxTimeMS) => coll.findOne(f, withLimits(c.driver, fl, maxTimeMS)),
          detailOf(x.name, f, c.documents)
        )
      )
    }),
  find: (filter, o) =>
    x.op("find", () => {
      const f = Req.filterOf(filter)
      const c = Req.optionsOf("find", o)
      return x.many(
        x.read(
          OP.find,
          c,
          (_, fl, maxTimeMS) =>
            readAll(fl, x.name, "find", (coll) => coll.find(f, withLimits(c.driver, fl, maxTimeMS))),
          detailOf(x.name, f, c.documents)
        )
      )
    }),
  stream: (filter, o) =>
    x.streamOp("find", () => {
      const f = Req.filterOf(filter)
      const c = Req.optionsOf("find", o)
      const open: Open = (coll, signal, b) => coll.find(f, streamOptions(c, signal, b))
      return Effect.succeed(
        cursorStream(x.handle, OP.find, x.name, open, x.decode, detailOf(x.name, f, c.documents), undefined)
      )
    }),
  countDocuments: (filter, o) =>
    x.op("countDocuments", () => {
      const f = Req.filterOf(filter)
      const c = Req.optionsOf("countDocuments", o)
      return x.read(
        OP.countDocuments,
        c,
        (coll, fl, maxTimeMS) => coll.countDocuments(f, withLimits(c.driver, fl, maxTimeMS)),
        detailOf(x.name, f, c.documents)
      )
    }),
  distinct: (key, filter, o) =>
    x.op("distinct", () => {
      const k = Req.keyOf(key)
      const f = Req.filterOf(filter)
      const c = Req.optionsOf("distinct", o)
      return x.read(
        OP.distinct,
        c,
        (coll, fl, maxTimeMS) => coll.distinct(k, f, withLimits(c.driver, fl, maxTimeMS)),
        detailOf(x.name, f, c.documents)
      )
    })
})

/** The writes: inserts, updates, replaces, find-and-modify, deletes, bulk writes. */
const writes = (
  x: ViewContext
): Pick<
  AnyView,
  | "insertOne"
  | "insertMany"
  | "updateOne"
  | "updateMany"
  | "replaceOne"
  | "findOneAndUpdate"
  | "deleteOne"
  | "deleteMany"
  | "bulkWrite"
> => ({
  insertOne: (doc, o) =>
    x.op("insertOne", () => {
      const d = Req.documentOf(doc)
      const c = Req.optionsOf("insertOne", o)
      return x.write(OP.insertOne, c, (coll, fl) => coll.insertOne(d, withLimits(c.driver, fl, undefined)), {
        collection: x.name
      })
    }),
  insertMany: (docs, o) =>
    x.op("insertMany", () => {
      const d = Req.documentsOf(docs)
      const c = Req.optionsOf("insertMany", o)
      return x.write(OP.insertMany, c, (coll, fl) => coll.insertMany(d, withLimits(c.driver, fl, undefined)), {
        collection: x.name
      })
    }),
  updateOne: updates(x, OP.updateOne, "updateOne"),
  updateMany: updates(x, OP.updateMany, "updateMany"),
  replaceOne: (filter, replacement, o) =>
    x.op("replaceOne", () => {
      const f = Req.filterOf(filter)
      const r = Req.replacementOf(replacement)
      const c = Req.optionsOf("replaceOne", o)
      return x.write(
        OP.replaceOne,
        c,
        (coll, fl) => coll.replaceOne(f, r, withLimits(c.driver, fl, undefined)),
        detailOf(x.name, f, c.documents)
      )
    }),
  findOneAndUpdate: (filter, update, o) =>
    x.op("findOneAndUpdate", () => {
      const f = Req.filterOf(filter)
      const u = Req.updateOf(update)
      const c = Req.optionsOf("findOneAndUpdate", o)
      return x.one(
        runOn(
          x.handle,
          pick(OP.findOneAndUpdate, c.idempotent),
          x.name,
          true,
          c.maxTimeMS,
          (coll, fl, maxTimeMS) =>
            coll.findOneAndUpdate(f, u as any, {
              ...withLimits(c.driver, fl, maxTimeMS),
              includeResultMetadata: false
            }),
          detailOf(x.name, f, c.documents, u)
        )
      )
    }),
  deleteOne: deletes(x, OP.deleteOne, "deleteOne"),
  deleteMany: deletes(x, OP.deleteMany, "deleteMany"),
  bulkWrite: (operations, o) =>
    x.op("bulkWrite", () => {
      const { models, documents } = Req.bulkOf(operations)
      const c = Req.optionsOf("bulkWrite", o)
      const more = c.documents === undefined ? documents : [...documents, ...c.documents]
      return x.write(
        OP.bulkWrite,
        c,
        (coll, fl) => coll.bulkWrite(models as any, withLimits(c.driver, fl, undefined)),
        {
          collection: x.name,
          documents: more
        } as Detail
      )
    })
})

/** Aggregations and indexes. */
const others = (
  x: ViewContext
): Pick<AnyView, "aggregate" | "aggregateStream" | "createIndex" | "createIndexes" | "listIndexes" | "dropIndex"> => ({
  aggregate: ((pipeline: unknown, o?: unknown) =>
    x.op("aggregate", () => aggregation(x, pipeline, o, false))) as AnyView["aggregate"],
  aggregateStream: ((pipeline: unknown, o?: unknown) =>
    x.streamOp("aggregate", () => aggregation(x, pipeline, o, true))) as AnyView["aggregateStream"],
  createIndex: (index, o) =>
    x.op("createIndex", () => {
      const spec = Req.indexSpecOf(index)
      const c = Req.optionsOf("createIndex", o)
      return runOn(x.handle, OP.createIndex, x.name, false, undefined, (coll, fl) =>
        coll.createIndex(spec as any, withLimits(c.driver, fl, undefined))
      )
    }),
  createIndexes: (indexes, o) =>
    x.op("createIndexes", () => {
      const specs = Req.indexDescriptionsOf(indexes)
      const c = Req.optionsOf("createIndex", o)
      return runOn(x.handle, OP.createIndexes, x.name, false, undefined, (coll, fl) =>
        coll.createIndexes(specs as any, withLimits(c.driver, fl, undefined))
      )
    }),
  listIndexes: () =>
    x.op("listIndexes", () =>
      x.read(OP.listIndexes, Req.noOptions, (_, fl, maxTimeMS) =>
        readAll(fl, x.name, "listIndexes", (cc) => cc.listIndexes(withLimits(undefined, fl, maxTimeMS)))
      )
    ),
  dropIndex: (index) =>
    x.op("dropIndex", () => {
      const n = Req.indexNameOf(index)
      return runOn(x.handle, OP.dropIndex, x.name, false, undefined, (coll, fl) =>
        coll.dropIndex(n, withLimits(undefined, fl, undefined)).then(() => undefined)
      )
    })
})

/** The view of collection `name`, its reads decoded with `decode` when there is one. @internal */
export const makeView = <T extends Document, A, R, D>(
  handle: Handle,
  name: string,
  decode: Decode<A, R, D>,
  nameRefusal: Refusal | undefined
): MongoCollection<T, A, R, D> => {
  const x = new ViewContext(handle, name, decode, nameRefusal)
  return { name, ...reads(x), ...writes(x), ...others(x) } as MongoCollection<T, A, R, D>
}

/** The views of one engine, made on first use and kept (per schema, by name). @internal */
export class Views {
  private readonly handle: Handle
  private readonly plain = new Map<unknown, AnyView>()
  private readonly bySchema = new WeakMap<object, Map<unknown, AnyView>>()
  constructor(handle: Handle) {
    this.handle = handle
  }

  collection(name: string, schema?: DocumentSchema): AnyView {
    let byName = this.plain
    if (schema !== undefined && schema !== null && (typeof schema === "object" || typeof schema === "function")) {
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
      let decode: Decode<any, any, any> = undefined
      let refusal = Req.collectionName(name)
      if (schema !== undefined) {
        if (isSchema(schema)) decode = Schema.decodeUnknownEffect(schema) as Decode<any, any, any>
        else refusal ??= invalid("schema", "must be a Schema codec")
      }
      view = makeView(this.handle, name, decode, refusal)
      byName.set(name, view)
    }
    return view
  }
}
