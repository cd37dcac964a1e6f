/**
 * The collections of a project's MongoDB database as the engine hands them out: every operation of a
 * `MongoCollection` runs for the current project, in its database, through the guard; a `TransactionCollection`
 * runs inside one guarded transaction. `MongoEngine` re-exports these models.
 *
 * @since 0.1.0
 */
import type * as Effect from "effect/Effect"
import type * as Schema from "effect/Schema"
import type * as Stream from "effect/Stream"
import type {
  AnyBulkWriteOperation,
  BulkWriteResult,
  DeleteResult,
  Document,
  Filter,
  Flatten,
  IndexDescription,
  IndexSpecification,
  InsertManyResult,
  InsertOneResult,
  OptionalUnlessRequiredId,
  UpdateFilter,
  UpdateResult,
  WithId,
  WithoutId
} from "mongodb"
import type { GuardError, ProtectionError } from "@tenantpool/core/Errors"
import type { MongoError } from "./MongoError.ts"
import type {
  AggregateOptions,
  BulkWriteOptions,
  CountOptions,
  CreateIndexOptions,
  DeleteOptions,
  DistinctOptions,
  FindOneAndUpdateOptions,
  FindOneOptions,
  FindOptions,
  InsertManyOptions,
  InsertOneOptions,
  ReplaceOptions,
  UpdateOptions
} from "./MongoOptions.ts"

/**
 * Options every write takes (declared in `MongoOptions.ts`, with the option allowlists).
 *
 * @since 0.1.0
 */
export type { WriteGuardOptions } from "./MongoOptions.ts"

/**
 * A schema whose encoded side is a document: results of a collection made with it are decoded with it.
 *
 * @category models
 * @since 0.1.0
 */
export type DocumentSchema = Schema.Codec<any, Document, any, any>

type Fail = MongoError | GuardError

// Inside a transaction the guard has admitted the whole body; each operation can still be refused by the
// installed protections (rate limits, the analyzer).
type TxFail = MongoError | ProtectionError

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
    options?: InsertOneOptions
  ) => Effect.Effect<InsertOneResult<T>, Fail>
  readonly insertMany: (
    documents: ReadonlyArray<OptionalUnlessRequiredId<T>>,
    options?: InsertManyOptions
  ) => Effect.Effect<InsertManyResult<T>, Fail>
  readonly findOne: (filter?: Filter<T>, options?: FindOneOptions) => Effect.Effect<A | null, Fail | D, R>
  /** `find` read to the end, as an array (filter, projection, sort, skip, limit in the options). */
  readonly find: (filter?: Filter<T>, options?: FindOptions) => Effect.Effect<Array<A>, Fail | D, R>
  /**
   * `find` as a stream, under one lease: the project's slot and the target's budget are held while it is open, the
   * tier deadline bounds it (and its cursor's `maxTimeMS`); the cursor is killed on the server however it stops.
   */
  readonly stream: (filter?: Filter<T>, options?: FindOptions) => Stream.Stream<A, Fail | D, R>
  readonly countDocuments: (filter?: Filter<T>, options?: CountOptions) => Effect.Effect<number, Fail>
  readonly distinct: <K extends keyof WithId<T> & string>(
    key: K,
    filter?: Filter<T>,
    options?: DistinctOptions
  ) => Effect.Effect<Array<Flatten<WithId<T>[K]>>, Fail>
  readonly updateOne: (
    filter: Filter<T>,
    update: UpdateFilter<T> | ReadonlyArray<Document>,
    options?: UpdateOptions
  ) => Effect.Effect<UpdateResult<T>, Fail>
  readonly updateMany: (
    filter: Filter<T>,
    update: UpdateFilter<T> | ReadonlyArray<Document>,
    options?: UpdateOptions
  ) => Effect.Effect<UpdateResult<T>, Fail>
  readonly replaceOne: (
    filter: Filter<T>,
    replacement: WithoutId<T>,
    options?: ReplaceOptions
  ) => Effect.Effect<UpdateResult<T>, Fail>
  readonly findOneAndUpdate: (
    filter: Filter<T>,
    update: UpdateFilter<T> | ReadonlyArray<Document>,
    options?: FindOneAndUpdateOptions
  ) => Effect.Effect<A | null, Fail | D, R>
  readonly deleteOne: (filter?: Filter<T>, options?: DeleteOptions) => Effect.Effect<DeleteResult, Fail>
  readonly deleteMany: (filter?: Filter<T>, options?: DeleteOptions) => Effect.Effect<DeleteResult, Fail>
  readonly bulkWrite: (
    operations: ReadonlyArray<AnyBulkWriteOperation<T>>,
    options?: BulkWriteOptions
  ) => Effect.Effect<BulkWriteResult, Fail>
  /**
   * An aggregation read to the end. Stages outside the allowlist (`$currentOp`, `$listSessions`, …) and namespaces
   * in another database than the project's are refused, naming the stage; a pipeline with `$out`/`$merge` is not
   * retried. With `schema`, results are decoded with it.
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
  readonly createIndex: (index: IndexSpecification, options?: CreateIndexOptions) => Effect.Effect<string, Fail>
  readonly createIndexes: (
    indexes: ReadonlyArray<IndexDescription>,
    options?: CreateIndexOptions
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
  readonly insertOne: (document: OptionalUnlessRequiredId<T>) => Effect.Effect<InsertOneResult<T>, TxFail>
  readonly insertMany: (
    documents: ReadonlyArray<OptionalUnlessRequiredId<T>>
  ) => Effect.Effect<InsertManyResult<T>, TxFail>
  readonly findOne: (filter?: Filter<T>, options?: FindOneOptions) => Effect.Effect<WithId<T> | null, TxFail>
  readonly find: (filter?: Filter<T>, options?: FindOptions) => Effect.Effect<Array<WithId<T>>, TxFail>
  readonly countDocuments: (filter?: Filter<T>) => Effect.Effect<number, TxFail>
  readonly updateOne: (
    filter: Filter<T>,
    update: UpdateFilter<T> | ReadonlyArray<Document>,
    options?: UpdateOptions
  ) => Effect.Effect<UpdateResult<T>, TxFail>
  readonly updateMany: (
    filter: Filter<T>,
    update: UpdateFilter<T> | ReadonlyArray<Document>,
    options?: UpdateOptions
  ) => Effect.Effect<UpdateResult<T>, TxFail>
  readonly replaceOne: (
    filter: Filter<T>,
    replacement: WithoutId<T>,
    options?: ReplaceOptions
  ) => Effect.Effect<UpdateResult<T>, TxFail>
  readonly findOneAndUpdate: (
    filter: Filter<T>,
    update: UpdateFilter<T> | ReadonlyArray<Document>,
    options?: FindOneAndUpdateOptions
  ) => Effect.Effect<WithId<T> | null, TxFail>
  readonly deleteOne: (filter?: Filter<T>) => Effect.Effect<DeleteResult, TxFail>
  readonly deleteMany: (filter?: Filter<T>) => Effect.Effect<DeleteResult, TxFail>
  readonly aggregate: <B extends Document = Document>(
    pipeline: ReadonlyArray<Document>
  ) => Effect.Effect<Array<B>, TxFail>
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
