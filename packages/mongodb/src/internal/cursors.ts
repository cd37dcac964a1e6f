/**
 * Cursor streams: `find` and `aggregate` read batch by batch, one guarded operation per batch, the cursor closed
 * (killCursors) however the stream stops: taken short, interrupted, or failed by an abandoned batch.
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
import { fromUnknown, type MongoError } from "../MongoError.ts"
import { beginOn, type Binding, collectionOf, end } from "./binding.ts"
import type { Handle } from "./calls.ts"
import { OP, type MongoOperation } from "./operations.ts"

/** How results are decoded (undefined: passed through as they are). @internal */
export type Decode<A, R, D> = ((u: unknown) => Effect.Effect<A, D, R>) | undefined

// How long a stream's finalizer waits for its cursor's close before leaving it to complete on its own.
const closeBound = "2 seconds"

/**
 * A stream's cursor, closed once and only when no batch of it is on its way.
 *
 * The driver cleans a cursor up again when a batch arrives for a cursor being closed, and that second clean-up ends
 * the cursor's session: a killCursors still waiting for a connection then fails unsent, and the server keeps the
 * cursor for its idle timeout. So an abandoned batch (its attempt timed out, the reader was interrupted) is left to
 * finish, and the cursor is closed after it; the stream's finalizer waits for that close (bounded, after which it
 * completes on its own) so that once a stream has stopped, the server has answered the kill.
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
        closeBound
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

/**
 * A cursor as a stream for the current project. `open` makes the cursor on the project's collection; `check`, when
 * given, may refuse the stream before anything is sent. The stream holds the client its cursor lives on until it
 * ends (a replaced client waits for it).
 *
 * @internal
 */
export const cursorStream = <A, R, D>(
  handle: Handle,
  op: MongoOperation,
  name: string,
  open: (c: Collection<Document>, signal: AbortSignal) => AbstractCursor<Document>,
  decode: Decode<A, R, D>,
  check: ((b: Binding) => MongoError | undefined) | undefined
): Stream.Stream<A, MongoError | GuardError | D, R> =>
  Stream.unwrap(
    Effect.gen(function* () {
      const { binding } = yield* handle.binding
      const refusal = check?.(binding)
      if (refusal !== undefined) return yield* Effect.fail(refusal)
      const clients = binding.clients
      const gen = clients.current
      gen.inflight++
      const sc = new StreamCursor()
      // The first batch's signal drops a `find` still waiting for a connection (and closes its cursor); a getMore
      // is never aborted (see StreamCursor), so later batches get a signal nothing listens to.
      let first = new AbortController()
      const later = new AbortController()
      let delivered = false
      let done = false
      yield* Effect.addFinalizer(() =>
        Effect.ensuring(
          sc.close,
          Effect.sync(() => clients.release(gen))
        )
      )
      const fetch = (b: Binding, attempt: AttemptSignal): Promise<Array<Document>> => {
        if (!delivered) {
          // First batch (or its retry after an abandoned attempt, whose cursor the abort closed).
          first = new AbortController()
          sc.cursor = gen.track(open(collectionOf(b, gen, name), first.signal))
        }
        const c = sc.cursor!
        const flight = beginOn(b, gen, attempt, delivered ? later : first)
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
            throw fromUnknown(delivered ? "getMore" : op.name, e, b.clients.secrets)
          }
        )
      }
      const batch = (): Effect.Effect<Array<Document>, MongoError | GuardError> =>
        delivered ? handle.run(OP.getMore, fetch, OP.getMore.mapError) : handle.run(op, fetch, op.mapError)
      const pull: Pull.Pull<Arr.NonEmptyReadonlyArray<A>, MongoError | GuardError | D, void, R> = Effect.suspend(() => {
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
