/**
 * One driver client per target (server and credentials, see `clientKey`), shared by every project bound to it and
 * sized from their tiers.
 *
 * The driver cannot resize a live pool, so a larger size (a project of a higher tier binds, a tier's limit grows)
 * starts a new *generation*: new work goes to a new client of the new size, and the old one is retired: closed as
 * soon as the work it started has drained, or at the retire timeout. A pool never shrinks while in use: idle
 * connections go after `maxIdleTime`. Pool counters come from the driver's CMAP events, per generation.
 *
 * Retiring is background work: a fiber per retired client, forked into the engine layer's scope (its `FiberSet`),
 * waits for the client to drain (or for the retire timeout, on the layer's `Clock`) and closes it. When the layer
 * closes, `Targets.shutdown` closes every retired client at once (bounded) and the fibers left are interrupted.
 * The per-operation path (`release` here, `begin` / `end` in `binding.ts`) only counts.
 *
 * @internal
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import type { Severity } from "effect/LogLevel"
import type { MongoClient, MongoClientOptions } from "mongodb"
import type { ProjectHandle } from "@tenantpool/core/CurrentProject"
import type { PoolStats } from "@tenantpool/core/Engine"
import type { Target } from "@tenantpool/core/Target"
import type { TierLimits } from "@tenantpool/core/Tier"
import { tierRank } from "@tenantpool/core/Vocabulary"
import { fromUnknown, type MongoError } from "../MongoError.ts"

/** Client settings common to every target. @internal */
export interface ClientSettings {
  readonly factory: (url: string, options: MongoClientOptions) => MongoClient
  /** The driver options every client gets (pool sizes are added per client). */
  readonly options: MongoClientOptions
  /** The largest pool a client may have, whatever the tiers ask for. */
  readonly maxPoolSize: number
  readonly minPoolSize: number
  readonly retireMillis: number
}

/** A project bound to a target. @internal */
export interface Member {
  readonly project: ProjectHandle
}

/** What the clients of every target need from the engine around them. @internal */
export interface Environment<M extends Member> {
  readonly settings: ClientSettings
  readonly limits: (project: ProjectHandle) => TierLimits
  /** Re-reads what a member keeps from its project's tier (called when the tier may have changed). */
  readonly refresh: (member: M) => void
  readonly recordAcquire: (project: ProjectHandle, seconds: number) => void
  /** Runs background work in the layer's scope (closing the layer interrupts it). */
  readonly fork: (effect: Effect.Effect<void>) => void
  /** The layer's clock, for code driven by driver events (outside any fiber). */
  readonly now: () => number
}

// How long closing clients may hold up the release of a target, and the layer's shutdown.
const closeBound = "5 seconds"

// A checkout failure is logged at most once per target in this window; the others are counted into the next log.
const checkoutLogMillis = 5_000

/** One driver client of a target and the counters its driver events feed. @internal */
export class Generation {
  readonly client: MongoClient
  readonly maxPoolSize: number
  readonly minPoolSize: number
  /** Driver calls, streams and transactions started on this client and not yet settled. */
  inflight = 0
  retired = false
  closed = false
  /** Completed when a retired client has nothing in flight any more (see `TargetClients.release`). */
  readonly drained = Deferred.makeUnsafe<void>()
  closing: Promise<void> | undefined = undefined
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
  constructor(client: MongoClient, maxPoolSize: number, minPoolSize: number) {
    this.client = client
    this.maxPoolSize = maxPoolSize
    this.minPoolSize = minPoolSize
  }
  /** Connections created and not yet closed (in use, idle, or being established). */
  get size(): number {
    return this.created - this.closedConnections
  }
  /** Counts a cursor as open on this client until the driver closes it (exhausted, killed or aborted). */
  track<C extends { once(event: "close", listener: () => void): unknown }>(cursor: C): C {
    this.cursors++
    cursor.once("close", () => {
      this.cursors--
    })
    return cursor
  }
}

/**
 * The key a client is shared by: the target's key, plus the database when it is the implicit authSource (a user
 * defined in that database authenticates there, so the same user name in another database is another identity).
 *
 * @internal
 */
export const clientKey = (target: Target): string =>
  target.user !== undefined && target.params["authSource"] === undefined
    ? `${target.key}|authSource=${target.database}`
    : target.key

/** Every target's clients, and what the layer's shutdown closes. @internal */
export class Targets<M extends Member> {
  readonly env: Environment<M>
  readonly byKey = new Map<string, TargetClients<M>>()
  /** Retired clients still serving work they started, across targets (a target may be gone already). */
  readonly retiring = new Set<Generation>()
  /** Set by `shutdown`: the layer's fibers are gone, so a client retired from then on is closed at once. */
  shutDown = false
  constructor(env: Environment<M>) {
    this.env = env
  }

  /** The target's clients for a project, made on first use; released with the scope (closed with the last one). */
  acquire(project: ProjectHandle, target: Target): Effect.Effect<TargetClients<M>, MongoError, Scope.Scope> {
    return Effect.acquireRelease(
      Effect.try({
        try: () => {
          const key = clientKey(target)
          let clients = this.byKey.get(key)
          if (clients === undefined) {
            clients = new TargetClients(this, key, target, this.sizeFor([project]))
            this.byKey.set(key, clients)
            this.log("Debug", "MongoDB client created", {
              target: clients.label,
              maxPoolSize: clients.current.maxPoolSize
            })
          }
          clients.refs++
          return clients
        },
        catch: (e) =>
          fromUnknown("connect", e, target.password === undefined ? undefined : [Redacted.value(target.password)])
      }),
      (clients) =>
        Effect.suspend(() => {
          if (--clients.refs > 0) return Effect.void
          if (this.byKey.get(clients.key) === clients) this.byKey.delete(clients.key)
          return Effect.asVoid(Effect.timeoutOption(clients.close(), closeBound))
        })
    )
  }

  /** Every target's members may have another tier now. */
  resizeAll(): void {
    for (const clients of this.byKey.values()) clients.resize()
  }

  /** Closes every retired client now (bounded); clients with projects bound close when their projects are freed. */
  shutdown(): Effect.Effect<void> {
    return Effect.suspend(() => {
      this.shutDown = true
      const closing = Effect.forEach([...this.retiring], (gen) => this.closeGeneration(gen), {
        discard: true,
        concurrency: "unbounded"
      })
      return Effect.asVoid(Effect.timeoutOption(closing, closeBound))
    })
  }

  /** The pool size for these projects: the largest `maxPool` of their tiers, capped. */
  sizeFor(projects: Iterable<ProjectHandle>): number {
    let want = 1
    for (const project of projects) want = Math.max(want, this.env.limits(project).maxPool)
    return Math.max(1, Math.min(this.env.settings.maxPoolSize, want))
  }

  /** Closes a client; completes when the driver has closed it (never fails). */
  closeGeneration(gen: Generation): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (gen.closing === undefined) {
        gen.closed = true
        this.retiring.delete(gen)
        gen.closing = gen.client.close().catch(() => undefined)
        this.log("Debug", "MongoDB client closed", { maxPoolSize: gen.maxPoolSize })
      }
      const closing = gen.closing
      return Effect.promise(() => closing)
    })
  }

  /** Logs from driver events, which arrive outside any fiber. */
  log(level: Severity, message: string, annotations: Record<string, unknown>): void {
    this.env.fork(Effect.annotateLogs(Effect.logWithLevel(level)(message), annotations))
  }
}

/** A target's clients (the current one, and retired ones still draining) and the projects bound to it. @internal */
export class TargetClients<M extends Member> {
  readonly targets: Targets<M>
  readonly key: string
  /** A display form without credentials or database: `mongodb://user@host:port`. */
  readonly label: string
  readonly target: Target
  /** The password, raw, for scrubbing error texts (never printed). */
  readonly secrets: ReadonlyArray<string>
  readonly members = new Set<M>()
  /** The member whose project has the highest tier: acquire times are recorded under its tier. */
  top: M | undefined = undefined
  /** Scopes holding this target (bindings being made or bound). */
  refs = 0
  current: Generation
  readonly retired = new Set<Generation>()
  private lastCheckoutLog = Number.NEGATIVE_INFINITY
  private suppressedCheckoutFailures = 0

  constructor(targets: Targets<M>, key: string, target: Target, size: number) {
    this.targets = targets
    this.key = key
    this.target = target
    this.label = target.label.replace(/\/[^/]*$/, "")
    this.secrets = target.password === undefined ? [] : [Redacted.value(target.password)]
    this.current = this.open(size)
  }

  bind(member: M): void {
    this.members.add(member)
    this.top = this.topMember()
    this.grow()
  }

  unbind(member: M): void {
    this.members.delete(member)
    this.top = this.topMember()
  }

  /** The members' tiers may have changed: they re-read their limits, and a larger pool starts a new client. */
  resize(): void {
    for (const member of this.members) this.targets.env.refresh(member)
    this.top = this.topMember()
    this.grow()
  }

  /** One call, stream or transaction settled on `gen` (the per-operation path: counting only). */
  release(gen: Generation): void {
    if (--gen.inflight > 0) return
    // A checkout the engine aborted leaves the driver's wait queue without an event (no checkOutFailed): with
    // nothing of ours in flight, nothing of ours is waiting either, so the count starts over.
    gen.waiting = 0
    if (gen.retired) Deferred.doneUnsafe(gen.drained, Effect.void)
  }

  /** The current client and the retired ones still draining. */
  generations(): Array<Generation> {
    return [this.current, ...this.retired]
  }

  /** Pool statistics in the spec's shape, summed over the live clients. */
  stats(): PoolStats {
    let size = 0
    let out = 0
    let pending = 0
    for (const gen of this.generations()) {
      if (gen.closed) continue
      size += gen.size
      out += gen.checkedOut
      // Waiting checkouts, bounded by the engine's calls in flight that hold no connection (see `release`).
      pending += Math.max(0, Math.min(gen.waiting, gen.inflight - gen.checkedOut))
    }
    return { size, available: Math.max(0, size - out), pending }
  }

  /** The statistics with the parts that make them up (what `MongoPoolStats` reports). */
  details() {
    let checkedOut = 0
    let cursors = 0
    let clients = 0
    let poolCleared = 0
    let checkoutFailed = 0
    for (const gen of this.generations()) {
      poolCleared += gen.cleared
      checkoutFailed += gen.checkoutFailed
      if (gen.closed) continue
      clients++
      checkedOut += gen.checkedOut
      cursors += gen.cursors
    }
    return {
      ...this.stats(),
      maxPoolSize: this.current.maxPoolSize,
      minPoolSize: this.current.minPoolSize,
      checkedOut,
      cursors,
      clients,
      projects: this.members.size,
      poolCleared,
      checkoutFailed
    }
  }

  /**
   * The last project is gone: every client is retired. Idle ones close now (the returned effect waits for them);
   * work that outlived its project (a stream still being read) keeps its client until it is done.
   */
  close(): Effect.Effect<void> {
    return Effect.suspend(() =>
      Effect.forEach(this.generations(), (gen) => this.retire(gen), { discard: true, concurrency: "unbounded" })
    )
  }

  /**
   * Takes a client out of service. An idle client (or any, once the layer is closing) is closed by the returned
   * effect; a busy one by a fiber in the layer's scope once its work drains, or at the retire timeout.
   */
  private retire(gen: Generation): Effect.Effect<void> {
    if (gen.retired || gen.closed) return Effect.void
    gen.retired = true
    const targets = this.targets
    if (gen.inflight === 0 || targets.shutDown) return this.forget(gen)
    this.retired.add(gen)
    targets.retiring.add(gen)
    targets.env.fork(
      Effect.andThen(
        Effect.timeoutOption(Deferred.await(gen.drained), targets.env.settings.retireMillis),
        this.forget(gen)
      )
    )
    return Effect.void
  }

  private forget(gen: Generation): Effect.Effect<void> {
    return Effect.suspend(() => {
      this.retired.delete(gen)
      return this.targets.closeGeneration(gen)
    })
  }

  /** A larger tier arrived (or a tier grew): new work goes to a client with a larger pool. */
  private grow(): void {
    const want = this.targets.sizeFor(this.projects())
    const old = this.current
    if (want <= old.maxPoolSize || this.targets.shutDown) return
    let next: Generation
    try {
      next = this.open(want)
    } catch (e) {
      // The same connection string made the current client, so this is not expected; keep serving with it.
      this.targets.log("Warn", "MongoDB pool limit could not be raised: keeping the current client", {
        target: this.label,
        from: old.maxPoolSize,
        to: want,
        error: fromUnknown("connect", e, this.secrets).message
      })
      return
    }
    this.current = next
    this.targets.env.fork(this.retire(old))
    this.targets.log("Info", "MongoDB pool limit raised: new client for new work, the old one closes when drained", {
      target: this.label,
      from: old.maxPoolSize,
      to: want
    })
  }

  private *projects(): Iterable<ProjectHandle> {
    for (const member of this.members) yield member.project
  }

  private topMember(): M | undefined {
    let top: M | undefined
    for (const m of this.members) {
      if (top === undefined || tierRank[m.project.tierName] > tierRank[top.project.tierName]) top = m
    }
    return top
  }

  /** A new client of `size`, its CMAP events counted into a new generation (the driver connects on first use). */
  private open(size: number): Generation {
    const { factory, options, minPoolSize } = this.targets.env.settings
    const min = Math.min(minPoolSize, size)
    const client = factory(Redacted.value(this.target.url), { ...options, maxPoolSize: size, minPoolSize: min })
    const gen = new Generation(client, size, min)
    client.on("connectionCreated", () => {
      gen.created++
    })
    client.on("connectionClosed", () => {
      gen.closedConnections++
    })
    client.on("connectionCheckOutStarted", () => {
      gen.waiting++
    })
    client.on("connectionCheckedOut", (e) => {
      gen.waiting--
      gen.checkedOut++
      const top = this.top
      if (top !== undefined) this.targets.env.recordAcquire(top.project, e.durationMS / 1000)
    })
    client.on("connectionCheckOutFailed", (e) => {
      gen.waiting--
      gen.checkoutFailed++
      this.checkoutFailed(e.address, e.reason, e.durationMS)
    })
    client.on("connectionCheckedIn", () => {
      gen.checkedOut--
    })
    client.on("connectionPoolCleared", (e) => {
      gen.cleared++
      this.targets.log("Warn", "MongoDB connection pool cleared", {
        target: this.label,
        address: e.address,
        interruptInUseConnections: e.interruptInUseConnections === true
      })
    })
    // Without a listener an 'error' event would throw; the driver reports failures through the operations.
    client.on("error", () => {})
    return gen
  }

  private checkoutFailed(address: string, reason: unknown, durationMS: number): void {
    const now = this.targets.env.now()
    if (now - this.lastCheckoutLog < checkoutLogMillis) {
      this.suppressedCheckoutFailures++
      return
    }
    this.targets.log("Warn", "MongoDB connection checkout failed", {
      target: this.label,
      address,
      reason,
      waitedMillis: Math.round(durationMS),
      alsoFailedSinceLastLog: this.suppressedCheckoutFailures
    })
    this.lastCheckoutLog = now
    this.suppressedCheckoutFailures = 0
  }
}
