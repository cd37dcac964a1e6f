/**
 * The operations the guard sees (static: one object per operation, not per call), each with the function that turns
 * a synchronous throw of its driver call into a `MongoError`, and the cancellation of abandoned attempts.
 *
 * @internal
 */
import type { Operation } from "@tenantpool/core/Engine"
import { fromUnknown, type MongoError } from "../MongoError.ts"
import type { Binding } from "./binding.ts"

/** An operation, with the mapping of its driver call's synchronous throws. @internal */
export interface MongoOperation extends Operation<Binding> {
  readonly mapError: (cause: unknown) => MongoError
}

// Why an abandoned call's signal is aborted; never surfaces (the guard has already answered the caller).
const abandoned = new Error("tenantpool: attempt abandoned (timeout or interruption)")

/** Aborts the driver calls of a binding whose attempts the guard has abandoned. @internal */
export const cancelAbandoned = (b: Binding): void => {
  for (const flight of b.flights) {
    if (flight.attempt.active) continue
    b.flights.delete(flight)
    const reader = flight.reader
    // A cursor already opened is closed after the batch on its way (closing it earlier can lose the kill).
    if (reader !== undefined && reader.delivered) reader.abandon()
    else flight.signal.abort(abandoned)
  }
}

const single = (name: string, idempotent: boolean, write: boolean): MongoOperation => ({
  name,
  idempotent,
  write,
  cancel: cancelAbandoned,
  mapError: (cause) => fromUnknown(name, cause)
})

// Writes come in two flavours: as declared by default (not retried), and declared idempotent by the caller.
const pair = (name: string): readonly [MongoOperation, MongoOperation] => [
  single(name, false, true),
  single(name, true, true)
]

/** Every operation of the engine. @internal */
export const OP = {
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

/** A write's operation as the caller declared it: idempotent (retried after infrastructure errors) or not. @internal */
export const pick = (ops: readonly [MongoOperation, MongoOperation], idempotent: boolean): MongoOperation =>
  ops[idempotent ? 1 : 0]
