/**
 * A project's use of its target (a *binding*): the database it works in, the driver objects of that database cached
 * for the current client, the limits its tier sets, and its driver calls in flight (so that the ones the guard
 * abandons can be aborted).
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { Collection, Db, Document } from "mongodb"
import type { ProjectHandle } from "@tenantpool/core/CurrentProject"
import type { AttemptSignal } from "@tenantpool/core/Engine"
import type { Target } from "@tenantpool/core/Target"
import type { TierName } from "@tenantpool/core/Tier"
import type { MongoError } from "../MongoError.ts"
import type { FlightSignal } from "./signal.ts"
import type { Generation, TargetClients, Targets } from "./targetClients.ts"

/** A project's use of a target: what its operations need, cached. @internal */
export interface Binding {
  readonly project: ProjectHandle
  readonly target: Target
  readonly clients: TargetClients<Binding>
  readonly database: string
  /** Driver calls of this binding in flight, for cancelling the abandoned ones. */
  readonly flights: Set<Flight>
  readonly collections: Map<string, Collection<Document>>
  cacheGen: Generation | undefined
  db: Db | undefined
  /** The tier the cached limits below were computed for. */
  tierSeen: TierName
  /** `maxTimeMS` for reads: the attempt timeout, or the tier's deadline when that is shorter. */
  maxTimeMS: number
  /** The tier's deadline: what bounds a stream (a lease), and its cursor's `maxTimeMS`. */
  deadlineMS: number
}

/**
 * One driver call (or one batch of a cursor) and how to stop it when the guard abandons it: a call is aborted
 * (dropped unsent if it still waits, its connection closed otherwise); a cursor whose first batch has been answered
 * is closed once its batch on the way has arrived (`reader`, see `cursors.ts`).
 *
 * @internal
 */
export class Flight {
  readonly binding: Binding
  readonly gen: Generation
  readonly attempt: AttemptSignal
  readonly signal: FlightSignal
  reader: { readonly delivered: boolean; abandon(): void } | undefined = undefined
  constructor(binding: Binding, gen: Generation, attempt: AttemptSignal, signal: FlightSignal) {
    this.binding = binding
    this.gen = gen
    this.attempt = attempt
    this.signal = signal
  }
}

/**
 * Binds a project to its target's clients for the scope: the binding is sized into them on creation and leaves
 * them when the scope closes. `maxTimeMS` is the project's, see `Binding`.
 *
 * @internal
 */
export const bind = (
  targets: Targets<Binding>,
  project: ProjectHandle,
  target: Target,
  maxTimeMS: (project: ProjectHandle) => number,
  deadlineMS: (project: ProjectHandle) => number
): Effect.Effect<Binding, MongoError, Scope.Scope> =>
  Effect.flatMap(targets.acquire(project, target), (clients) =>
    Effect.acquireRelease(
      Effect.sync(() => {
        const b: Binding = {
          project,
          target,
          clients,
          database: target.database,
          flights: new Set(),
          collections: new Map(),
          cacheGen: undefined,
          db: undefined,
          tierSeen: project.tierName,
          maxTimeMS: maxTimeMS(project),
          deadlineMS: deadlineMS(project)
        }
        clients.bind(b)
        return b
      }),
      (b) => Effect.sync(() => clients.unbind(b))
    )
  )

/**
 * Starts a driver call on the target's current client (after a tier change the binding has not seen yet), its
 * progress reported to `attempt` through `signal`.
 *
 * @internal
 */
export const begin = (b: Binding, attempt: AttemptSignal, signal: FlightSignal): Flight => {
  if (b.project.tierName !== b.tierSeen) b.clients.resize()
  return beginOn(b, b.clients.current, attempt, signal)
}

/** Starts a driver call on a given client (a cursor's batches stay on the client their cursor lives on). @internal */
export const beginOn = (b: Binding, gen: Generation, attempt: AttemptSignal, signal: FlightSignal): Flight => {
  gen.inflight++
  signal.track(attempt)
  const flight = new Flight(b, gen, attempt, signal)
  b.flights.add(flight)
  return flight
}

/** Ends a driver call. @internal */
export const end = (flight: Flight): void => {
  flight.binding.flights.delete(flight)
  flight.binding.clients.release(flight.gen)
}

/** The project's database on a client, cached until the binding moves to another client. @internal */
export const dbOf = (b: Binding, gen: Generation): Db => {
  if (b.cacheGen !== gen || b.db === undefined) {
    b.collections.clear()
    b.db = gen.client.db(b.database)
    b.cacheGen = gen
  }
  return b.db
}

/** `ping` on the project's database, on the target's current client. @internal */
export const ping = (b: Binding, signal: AbortSignal | undefined): Promise<Document> =>
  dbOf(b, b.clients.current).command({ ping: 1 }, { signal })

/** A collection of the project's database on a client, cached (at most 256 per binding). @internal */
export const collectionOf = (b: Binding, gen: Generation, name: string): Collection<Document> => {
  const db = dbOf(b, gen)
  let c = b.collections.get(name)
  if (c === undefined) {
    if (b.collections.size >= 256) b.collections.clear()
    c = db.collection(name)
    b.collections.set(name, c)
  }
  return c
}
