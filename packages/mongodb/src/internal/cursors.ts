/**
 * Cursors read batch by batch: `find` and `aggregate` read to the end as arrays (one guarded operation, its getMores
 * inside its attempt), and the same as streams (one lease for the whole stream: the project's slot and the target's
 * budget held while it is open, the tier deadline bounding it). However a cursor stops — read to the end, taken
 * short, failed, interrupted, abandoned by the guard — the server's cursor is gone afterwards: exhausted, or killed
 * (killCursors) once no batch of it is on its way.
 *
 * Why after the batch: the driver cleans a cursor up again when a batch arrives for a cursor being closed, and that
 * second clean-up ends the cursor's session: a killCursors still waiting for a connection then fails unsent, and the
 * server keeps the cursor for its idle timeout (10 minutes). So a getMore is never aborted: an abandoned one is
 * left to finish and the cursor is closed right after it. A first batch (`find`, `aggregate`) is aborted at once:
 * unsent, it is dropped; sent, its connection is closed with it.
 *
 * @internal
 */
import * as Arr from "effect/Array"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import type * as Pull from "effect/Pull"
import * as Stream from "effect/Stream"
import type { AbstractCursor, Collection, Document } from "mongodb"
import type { AttemptSignal } from "@tenantpool/core/Engine"
import type { GuardError } from "@tenantpool/core/Errors"
import type { ProtectionDetail } from "@tenantpool/core/Protections"
import { fromUnknown, type MongoError } from "../MongoError.ts"
import { beginOn, type Binding, collectionOf, end, type Flight } from "./binding.ts"
import type { Handle } from "./calls.ts"
import { OP, type MongoOperation } from "./operations.ts"
import { FlightSignal } from "./signal.ts"
import type { Generation } from "./targetClients.ts"

/** How results are decoded (undefined: passed through as they are). @internal */
export type Decode<A, R, D> = ((u: unknown) => Effect.Effect<A, D, R>) | undefined

/** Opens a cursor on the project's collection with the driver options given (the signal among them). @internal */
export type Open = (c: Collection<Document>, signal: FlightSignal, b: Binding) => AbstractCursor<Document>

// How long a stream's finalizer waits for its cursor's close before leaving it to complete on its own.
const closeBound = "2 seconds"

// Thrown into an abandoned read's promise; never surfaces (the guard has answered the caller already).
const abandonedRead = new Error("tenantpool: cursor read abandoned")

/**
 * One cursor and its batches: opened with the first batch, closed once and only when no batch of it is on its way
 * (see the module comment).
 *
 * @internal
 */
export class CursorReader {
  cursor: AbstractCursor | undefined = undefined
  /** The first batch has been answered (the cursor exists on the server, and the engine knows its id). */
  delivered = false
  /** The server has nothing more: the cursor is closed on the server already. */
  done = false
  /** The batch on its way, if any. */
  private batch: Promise<unknown> | undefined = undefined
  private closing: Promise<void> | undefined = undefined
  readonly gen: Generation
  /**
   * The cursor's signal: the driver passes it to every batch of the cursor, so it reports each batch's progress;
   * aborting it (first batch only) drops or closes the cursor.
   */
  readonly signal: FlightSignal
  private readonly open: Open
  private readonly name: string
  private readonly operation: string
  constructor(gen: Generation, name: string, operation: string, open: Open, signal: FlightSignal) {
    this.gen = gen
    this.name = name
    this.operation = operation
    this.open = open
    this.signal = signal
  }

  /** The next batch (possibly empty), fetched on `b`'s flight under `attempt`. */
  next(b: Binding, attempt: AttemptSignal): Promise<Array<Document>> {
    if (this.cursor === undefined) {
      this.cursor = this.gen.track(this.open(collectionOf(b, this.gen, this.name), this.signal, b))
    }
    const c = this.cursor
    const flight: Flight = beginOn(b, this.gen, attempt, this.signal)
    flight.reader = this
    const batch = (this.batch = c.hasNext())
    return batch.then(
      (more) => {
        this.batch = undefined
        end(flight)
        const docs = more ? c.readBufferedDocuments() : []
        this.delivered = true
        if (c.closed || c.id === undefined || (c.id.isZero() && c.bufferedCount() === 0)) this.done = true
        return docs
      },
      (e: unknown) => {
        this.batch = undefined
        end(flight)
        throw fromUnknown(this.delivered ? "getMore" : this.operation, e, b.clients.secrets)
      }
    )
  }

  /** The guard abandoned the read: the cursor is closed after the batch on its way. */
  abandon(): void {
    void this.close()
  }

  /** Closes the cursor after the batch on its way (once; completes when the server has answered the kill). */
  close(): Promise<void> {
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

  /** `close`, bounded: a stream's finalizer waits this long at most. */
  readonly closeEffect: Effect.Effect<void> = Effect.suspend(() =>
    Effect.asVoid(
      Effect.timeoutOption(
        Effect.promise(() => this.close()),
        closeBound
      )
    )
  )
}

/**
 * Reads a cursor to the end within one attempt (`find`, `aggregate` as arrays): batch after batch while the
 * attempt is active; a read that fails or is abandoned closes its cursor (after the batch on its way).
 *
 * @internal
 */
export const readAll = async (
  flight: Flight,
  name: string,
  operation: string,
  open: Open
): Promise<Array<Document>> => {
  // The call's own flight stops the cursor as the reader does (abort the first batch, close after a getMore).
  const reader = new CursorReader(flight.gen, name, operation, open, flight.signal)
  flight.reader = reader
  const attempt = flight.attempt
  const b = flight.binding
  const all: Array<Document> = []
  try {
    for (;;) {
      const docs = await reader.next(b, attempt)
      for (const doc of docs) all.push(doc)
      if (reader.done) return all
      if (!attempt.active) throw abandonedRead
    }
  } catch (e) {
    if (!reader.done) void reader.close()
    throw e
  }
}

/**
 * A cursor as a stream for the current project, under one lease (see the module comment). `open` makes the cursor
 * on the project's collection; `check`, when given, may refuse the stream before anything is sent.
 *
 * @internal
 */
export const cursorStream = <A, R, D>(
  handle: Handle,
  op: MongoOperation,
  name: string,
  open: Open,
  decode: Decode<A, R, D>,
  detail: ProtectionDetail,
  check: ((b: Binding) => MongoError | undefined) | undefined
): Stream.Stream<A, MongoError | GuardError | D, R> =>
  Stream.unwrap(
    Effect.gen(function* () {
      const lease = yield* handle.lease(op, detail)
      const binding = lease.binding
      const refusal = check?.(binding)
      if (refusal !== undefined) return yield* Effect.fail(refusal)
      const clients = binding.clients
      // The stream holds the client its cursor lives on until it ends (a replaced client waits for it).
      const gen = clients.current
      gen.inflight++
      const reader = new CursorReader(gen, name, op.name, open, new FlightSignal())
      yield* Effect.addFinalizer(() =>
        Effect.ensuring(
          reader.closeEffect,
          Effect.sync(() => clients.release(gen))
        )
      )
      const batch: Effect.Effect<Array<Document>, MongoError> = Effect.tryPromise({
        try: () => reader.next(binding, lease.signal),
        catch: (e) => fromUnknown(reader.delivered ? OP.getMore.name : op.name, e, clients.secrets)
      })
      const pull: Pull.Pull<Arr.NonEmptyReadonlyArray<A>, MongoError | D, void, R> = Effect.suspend(() => {
        if (reader.done) return Cause.done()
        return Effect.flatMap(batch, (docs) => {
          if (!Arr.isArrayNonEmpty(docs)) return reader.done ? Cause.done() : pull
          if (decode === undefined) return Effect.succeed(docs as unknown as Arr.NonEmptyReadonlyArray<A>)
          return Effect.forEach(docs, decode) as Effect.Effect<Arr.NonEmptyReadonlyArray<A>, D, R>
        })
      })
      return Stream.fromPull(Effect.succeed(pull)).pipe(Stream.interruptWhen(lease.expired))
    })
  )
