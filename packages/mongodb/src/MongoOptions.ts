/**
 * The driver options each operation takes: an allowlist per operation, checked at run time (any other option,
 * including ones the driver's types allow, fails with a `MongoError` of kind `forbidden` naming it, before
 * anything is sent) and in the types (every other option of the driver's type is `?: never`, so passing it does
 * not type-check, not even through a variable typed with the driver's options).
 *
 * An option is allowed when it acts only on the command's own collection and result: it does not choose a
 * database (`dbName`, `authdb`), a session (`session`: the engine owns its clients' sessions; transactions are
 * `MongoEngine.transaction`), a server or connection (`readPreference`: the target's breakers, budget and pool
 * watch the server the engine selects), does not outlive the engine's bounds (`noCursorTimeout`, `tailable`,
 * `awaitData`, `maxAwaitTimeMS`, `timeoutMS`, `timeoutMode`: cursors stay under the tier deadline and the
 * server's cursor timeout), does not bypass what the platform configured (`bypassDocumentValidation`), does not
 * hide the outcome (a write concern `w: 0`, `explain`, `raw`, `includeResultMetadata`, `allowPartialResults`), and
 * does not change how documents are serialized (`serializeFunctions`, `checkKeys`, `ignoreUndefined`, and the BSON
 * (de)serialization flags: the engine sends its own checked copy of every document, see the package README).
 * `comment`, `let`, `collation`, `hint` and the other query shapers stay: their documents are checked like a
 * filter.
 *
 * @since 0.1.0
 */
import type {
  AggregateOptions as DriverAggregateOptions,
  BulkWriteOptions as DriverBulkWriteOptions,
  CountDocumentsOptions as DriverCountOptions,
  CreateIndexesOptions as DriverCreateIndexesOptions,
  DeleteOptions as DriverDeleteOptions,
  DistinctOptions as DriverDistinctOptions,
  FindOneAndUpdateOptions as DriverFindOneAndUpdateOptions,
  FindOneOptions as DriverFindOneOptions,
  FindOptions as DriverFindOptions,
  InsertOneOptions as DriverInsertOneOptions,
  ReplaceOptions as DriverReplaceOptions,
  TransactionOptions as DriverTransactionOptions,
  UpdateOptions as DriverUpdateOptions
} from "mongodb"

/**
 * How an option's value is checked: a number (`int`: an integer; `count`: an integer ≥ 0; `millis`: an integer
 * ≥ 1, since 0 means "no limit" to the server), a boolean, a string, a document (copied and checked like a filter),
 * any BSON value, a sort or hint (a name, a document or an array), a read concern, a write concern (acknowledged:
 * `w: 0` is refused), array filters, `"before"`/`"after"`.
 *
 * @category models
 * @since 0.1.0
 */
export type OptionKind =
  | "int"
  | "count"
  | "millis"
  | "number"
  | "boolean"
  | "string"
  | "document"
  | "bson"
  | "sortOrHint"
  | "readConcern"
  | "writeConcern"
  | "arrayFilters"
  | "returnDocument"

const read = {
  collation: "document",
  comment: "bson",
  maxTimeMS: "millis",
  readConcern: "readConcern"
} as const

const findOne = {
  ...read,
  allowDiskUse: "boolean",
  hint: "sortOrHint",
  let: "document",
  max: "document",
  min: "document",
  projection: "document",
  returnKey: "boolean",
  showRecordId: "boolean",
  skip: "count",
  sort: "sortOrHint"
} as const

const write = { comment: "bson", writeConcern: "writeConcern", idempotent: "boolean" } as const

const update = {
  ...write,
  arrayFilters: "arrayFilters",
  collation: "document",
  hint: "sortOrHint",
  let: "document",
  upsert: "boolean"
} as const

/**
 * The options each operation takes and how their values are checked (`idempotent` is the engine's own, see
 * `WriteGuardOptions`).
 *
 * @category constants
 * @since 0.1.0
 */
export const allowedOptions = {
  find: { ...findOne, batchSize: "count", limit: "int", singleBatch: "boolean" },
  findOne,
  countDocuments: { ...read, hint: "sortOrHint", limit: "count", skip: "count" },
  distinct: { ...read, hint: "sortOrHint" },
  aggregate: {
    ...read,
    allowDiskUse: "boolean",
    batchSize: "count",
    hint: "sortOrHint",
    let: "document",
    writeConcern: "writeConcern"
  },
  insertOne: write,
  insertMany: { ...write, ordered: "boolean" },
  updateOne: update,
  updateMany: update,
  replaceOne: {
    ...write,
    collation: "document",
    hint: "sortOrHint",
    let: "document",
    sort: "sortOrHint",
    upsert: "boolean"
  },
  findOneAndUpdate: {
    ...update,
    maxTimeMS: "millis",
    projection: "document",
    returnDocument: "returnDocument",
    sort: "sortOrHint"
  },
  deleteOne: { ...write, collation: "document", hint: "sortOrHint", let: "document" },
  deleteMany: { ...write, collation: "document", hint: "sortOrHint", let: "document" },
  bulkWrite: { ...write, let: "document", ordered: "boolean" },
  createIndex: {
    comment: "bson",
    collation: "document",
    expireAfterSeconds: "count",
    hidden: "boolean",
    name: "string",
    partialFilterExpression: "document",
    sparse: "boolean",
    unique: "boolean",
    weights: "document",
    wildcardProjection: "document",
    textIndexVersion: "int",
    "2dsphereIndexVersion": "int",
    bits: "int",
    min: "number",
    max: "number"
  },
  transaction: { readConcern: "readConcern", writeConcern: "writeConcern", maxCommitTimeMS: "millis" }
} as const satisfies Record<string, Readonly<Record<string, OptionKind>>>

/**
 * An operation whose options are allowlisted.
 *
 * @category models
 * @since 0.1.0
 */
export type OptionsOf = keyof typeof allowedOptions

type Keys<Op extends OptionsOf> = keyof (typeof allowedOptions)[Op]

/**
 * The driver's options `O` narrowed to the allowed keys of `Op`: every other key of `O` is `?: never`.
 *
 * @category models
 * @since 0.1.0
 */
export type Allowed<O, Op extends OptionsOf> = { readonly [K in Extract<keyof O, Keys<Op>>]?: O[K] | undefined } & {
  readonly [K in Exclude<keyof O, Keys<Op>>]?: never
}

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
 * @category models
 * @since 0.1.0
 */
export type FindOptions = Allowed<DriverFindOptions, "find">
/**
 * @category models
 * @since 0.1.0
 */
export type FindOneOptions = Allowed<DriverFindOneOptions, "findOne">
/**
 * @category models
 * @since 0.1.0
 */
export type CountOptions = Allowed<DriverCountOptions, "countDocuments">
/**
 * @category models
 * @since 0.1.0
 */
export type DistinctOptions = Allowed<DriverDistinctOptions, "distinct">
/**
 * @category models
 * @since 0.1.0
 */
export type AggregateOptions = Allowed<DriverAggregateOptions, "aggregate">
/**
 * @category models
 * @since 0.1.0
 */
export type InsertOneOptions = Allowed<DriverInsertOneOptions, "insertOne"> & WriteGuardOptions
/**
 * @category models
 * @since 0.1.0
 */
export type InsertManyOptions = Allowed<DriverBulkWriteOptions, "insertMany"> & WriteGuardOptions
/**
 * @category models
 * @since 0.1.0
 */
export type UpdateOptions = Allowed<DriverUpdateOptions, "updateOne"> & WriteGuardOptions
/**
 * @category models
 * @since 0.1.0
 */
export type ReplaceOptions = Allowed<DriverReplaceOptions, "replaceOne"> & WriteGuardOptions
/**
 * @category models
 * @since 0.1.0
 */
export type FindOneAndUpdateOptions = Allowed<DriverFindOneAndUpdateOptions, "findOneAndUpdate"> & WriteGuardOptions
/**
 * @category models
 * @since 0.1.0
 */
export type DeleteOptions = Allowed<DriverDeleteOptions, "deleteOne"> & WriteGuardOptions
/**
 * @category models
 * @since 0.1.0
 */
export type BulkWriteOptions = Allowed<DriverBulkWriteOptions, "bulkWrite"> & WriteGuardOptions
/**
 * @category models
 * @since 0.1.0
 */
export type CreateIndexOptions = Allowed<DriverCreateIndexesOptions, "createIndex">
/**
 * @category models
 * @since 0.1.0
 */
export type TransactionOptions = Allowed<DriverTransactionOptions, "transaction">
