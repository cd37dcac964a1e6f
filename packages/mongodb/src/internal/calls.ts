/**
 * One guarded driver call on a collection of the current project: the per-operation path. Reads carry `maxTimeMS`
 * (the binding's, or the caller's when shorter) so that a query the guard abandons also stops on the server, and
 * every call gets an `AbortSignal` that the guard's cancellation aborts (see `operations.ts`).
 *
 * @internal
 */
import type * as Effect from "effect/Effect"
import type { Collection, Document } from "mongodb"
import type { AttemptSignal, EngineHandle } from "@tenantpool/core/Engine"
import type { GuardError } from "@tenantpool/core/Errors"
import type { ProtectionDetail } from "@tenantpool/core/Protections"
import { fromUnknown, type MongoError } from "../MongoError.ts"
import { begin, type Binding, collectionOf, end, type Flight } from "./binding.ts"
import type { MongoOperation } from "./operations.ts"
import { FlightSignal } from "./signal.ts"

/** The guard, bound to the MongoDB engine. @internal */
export type Handle = EngineHandle<Binding, MongoError>

/**
 * A driver call: gets the collection, its flight (the signal to pass, the client, the attempt) and the `maxTimeMS`
 * to send (none: undefined).
 *
 * @internal
 */
export type Call<A> = (c: Collection<Document>, flight: Flight, maxTimeMS: number | undefined) => Promise<A>

// MongoDB-wire servers that reject `maxTimeMS` on a command answer FailedToParse about it before executing anything.
const rejectsMaxTime = (e: unknown): boolean =>
  (e as { code?: unknown })?.code === 9 && /maxTimeMS/.test(String((e as { message?: unknown })?.message))

/**
 * One guarded driver call on collection `name`. `maxTime` says whether it is a read (it then carries `maxTimeMS`);
 * `detail`, when given, is what the installed protections (rate limits, the MongoDB analyzer) check first.
 *
 * @internal
 */
export const runOn = <A>(
  handle: Handle,
  op: MongoOperation,
  name: string,
  maxTime: boolean,
  userMaxTime: number | undefined,
  call: Call<A>,
  detail?: ProtectionDetail
): Effect.Effect<A, MongoError | GuardError> => {
  const f = (b: Binding, attempt: AttemptSignal): Promise<A> => {
    const flight = begin(b, attempt, new FlightSignal())
    const gen = flight.gen
    const c = collectionOf(b, gen, name)
    const signal = flight.signal
    let limit: number | undefined
    if (maxTime && !gen.noMaxTime.has(op.name)) {
      limit = userMaxTime === undefined ? b.maxTimeMS : Math.min(userMaxTime, b.maxTimeMS)
    } else {
      limit = userMaxTime
    }
    let promise = call(c, flight, limit)
    if (limit !== undefined && userMaxTime === undefined) {
      promise = promise.catch((e: unknown) => {
        if (!rejectsMaxTime(e) || signal.aborted) throw e
        // Refused before executing: remember, and send it again without the limit.
        gen.noMaxTime.add(op.name)
        return call(c, flight, undefined)
      })
    }
    return promise.then(
      (a) => {
        end(flight)
        return a
      },
      (e: unknown) => {
        end(flight)
        throw fromUnknown(op.name, e, b.clients.secrets)
      }
    )
  }
  return detail === undefined ? handle.run(op, f, op.mapError) : handle.run(op, f, op.mapError, undefined, detail)
}

/**
 * The driver options of one attempt: the checked options (a fresh object per attempt: the driver may keep what it is
 * given), the flight's signal and `maxTimeMS`.
 *
 * @internal
 */
export const withLimits = (o: Document | undefined, flight: Flight, maxTimeMS: number | undefined): any => {
  const out: Document = o === undefined ? {} : { ...o }
  out["signal"] = flight.signal
  if (maxTimeMS !== undefined) out["maxTimeMS"] = maxTimeMS
  else delete out["maxTimeMS"]
  return out
}
