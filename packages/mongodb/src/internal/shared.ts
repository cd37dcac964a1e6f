/**
 * The engine's state per target and per (project, target) binding.
 *
 * A target (server + credentials, see `clientKey`) has one MongoClient at a time: a *generation*. Its pool is sized
 * from the tiers of the projects bound to it; when a project of a larger tier arrives (or a tier's limit grows), the
 * driver cannot resize a live pool, so a new client (the next generation) takes new work and the old one closes as
 * soon as the work it started has drained. Pool counters come from the driver's CMAP events, per generation.
 *
 * @internal
 */
import type { AbstractCursor, Collection, Db, Document, MongoClient } from "mongodb"
import type { ProjectHandle } from "@tenantpool/core/CurrentProject"
import type { Target } from "@tenantpool/core/Target"
import type { AttemptSignal } from "@tenantpool/core/Engine"
import type { TierName } from "@tenantpool/core/Tier"

/** What the engine found out about a server once (per client): whether it runs transactions, and what it is. @internal */
export interface Capabilities {
  readonly transactions: boolean
  readonly server: string
}

/** One MongoClient of a target and the counters its driver events feed. @internal */
export class Generation {
  readonly client: MongoClient
  readonly maxPoolSize: number
  readonly minPoolSize: number
  /** Driver calls, streams and transactions started on this client and not yet settled. */
  inflight = 0
  retired = false
  closed = false
  retireTimer: ReturnType<typeof setTimeout> | undefined = undefined
  /** The retired set of the target this client served, once retired. */
  retiredIn: Set<Generation> | undefined = undefined
  // CMAP counters
  created = 0
  closedConnections = 0
  checkedOut = 0
  waiting = 0
  cleared = 0
  checkoutFailed = 0
  /** Cursors opened on this client that the driver has not closed yet. */
  cursors = 0
  /** Commands a server refused `maxTimeMS` on (some MongoDB-wire servers reject it for e.g. `distinct`). */
  readonly noMaxTime = new Set<string>()
  capabilities: Promise<Capabilities> | undefined = undefined
  constructor(client: MongoClient, maxPoolSize: number, minPoolSize: number) {
    this.client = client
    this.maxPoolSize = maxPoolSize
    this.minPoolSize = minPoolSize
  }
  /** Connections created and not yet closed (in use, idle, or being established). */
  get size(): number {
    return this.created - this.closedConnections
  }
}

/** A target's client (generations) and the projects bound to it. @internal */
export class SharedTarget {
  readonly key: string
  /** A display form without credentials or database: `mongodb://user@host:port`. */
  readonly label: string
  readonly target: Target
  /** The password, raw, for scrubbing error texts (never printed). */
  readonly secrets: ReadonlyArray<string>
  refs = 0
  readonly bindings = new Set<Binding>()
  gen: Generation
  readonly retired = new Set<Generation>()
  /** The binding whose project has the highest tier: the pool is sized for it, and its acquire times are its. */
  top: Binding | undefined = undefined
  lastCheckoutLog = 0
  suppressedCheckoutFailures = 0
  constructor(key: string, label: string, target: Target, secrets: ReadonlyArray<string>, gen: Generation) {
    this.key = key
    this.label = label
    this.target = target
    this.secrets = secrets
    this.gen = gen
  }
  generations(): Array<Generation> {
    return [this.gen, ...this.retired]
  }
}

/** A project's use of a target: what its operations need, cached. @internal */
export interface Binding {
  readonly project: ProjectHandle
  readonly target: Target
  readonly shared: SharedTarget
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
}

/** One driver call (or one batch of a cursor stream) and how to abort it. @internal */
export class Flight {
  readonly binding: Binding
  readonly gen: Generation
  readonly attempt: AttemptSignal
  readonly controller: AbortController
  constructor(binding: Binding, gen: Generation, attempt: AttemptSignal, controller: AbortController) {
    this.binding = binding
    this.gen = gen
    this.attempt = attempt
    this.controller = controller
  }
}

/** Counts a cursor as open on its client until the driver closes it (exhausted, killed or aborted). @internal */
export const trackCursor = <C extends AbstractCursor>(gen: Generation, cursor: C): C => {
  gen.cursors++
  cursor.once("close", () => {
    gen.cursors--
  })
  return cursor
}
