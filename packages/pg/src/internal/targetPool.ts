/**
 * One `@effect/sql-pg` pool per target (server, user, database, password), shared by every project bound to it and
 * sized from their tiers.
 *
 * sql-pg pools have a fixed size, so a size change (a project of a higher tier binds, the last one leaves, a tier's
 * limits change) starts a new *generation*: new work goes to a new pool of the new size, and the old one closes as
 * soon as the work it carries has finished. For that moment the target may hold the connections of both.
 *
 * sql-pg exposes no pool statistics, so the counts here are the engine's own: physical sockets (counted through
 * sql-pg's `stream` factory option, the one place every connection of a pool is opened), statements in flight,
 * exclusive reservations (transactions, streams, `reserve`) and checkouts waiting for a connection.
 *
 * A fleet's share (`Coordination.ConnectionShares`, when a coordinator is installed) caps the pool's size, and then
 * the overlap of generations as well: a new generation opens only when its size and what retired generations may
 * still hold fit in the share, and new work waits for that (`mustWait` / `ready`), so the process never holds more
 * connections to the target than its share, nor more than its old share while a smaller one drains in.
 *
 * @since 0.1.0
 */
import { createHash } from "node:crypto"
import * as Net from "node:net"
import * as PgPool from "@effect/sql-pg/PgPool"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import type { Target } from "@tenantpool/core/Target"
import type { TierLimits } from "@tenantpool/core/Tier"
import type { Gate } from "./gate.ts"

/** Pool settings common to every target. */
export interface PoolSettings {
  readonly multiplex: boolean
  readonly multiplexConcurrency: number
  readonly maxConnections: number
  /** Milliseconds (checked when the engine is built, like every duration below). */
  readonly idleTimeout: number
  readonly connectTimeout: number
  readonly connectionTTL: number | undefined
  readonly keepAlive: number | undefined
  readonly applicationName: string
  readonly tagTargets: boolean
  readonly prepare: boolean | undefined
  readonly startupParameters: Readonly<Record<string, string>> | undefined
}

/** What a pool needs to know about a project bound to it. */
export interface Member {
  readonly limits: () => TierLimits
  /** The connections the project may hold at once (its tier's `maxPool`), followed on every resize. */
  readonly gate: Gate
}

/** How long a closed socket still counts against a fleet share (its backend ending on the server). */
const lingerMillis = 100

/** Statement texts whose duration is remembered per target (the oldest is forgotten first). */
const latencyEntries = 4_096

/** A label-free, secret-free tag of a target: a short one-way hash of its identity. */
export const targetTag = (target: Target): string => createHash("sha256").update(target.key).digest("hex").slice(0, 10)

/** A sql-pg pool of one size, and who is using it. */
export class Generation {
  readonly id: number
  readonly scope: Scope.Closeable
  readonly min: number
  readonly max: number
  /** Set right after construction: the pool's socket factory needs the generation to count into. */
  pool: PgPool.PgPool = undefined as unknown as PgPool.PgPool
  sockets = 0
  /**
   * Sockets closed on this side less than `lingerMillis` ago: the server may still be ending their backends (they
   * stay in `pg_stat_activity`, and in `max_connections`, for a moment after the client's socket closed).
   */
  lingering = 0
  /** The pool has had its minimum open, since when it is below it again, and its last success (performance.now()). */
  filled = false
  droppedAt = 0
  okAt = 0
  users = 0
  retired = false
  closed = false
  /**
   * What the generation may still hold on the server: its size while it has users (it may open up to it), else its
   * sockets, and those just closed whose backends may not have ended yet.
   */
  holds(): number {
    return (this.users > 0 && !this.closed ? Math.max(this.max, this.sockets) : this.sockets) + this.lingering
  }
  constructor(id: number, scope: Scope.Closeable, min: number, max: number) {
    this.id = id
    this.scope = scope
    this.min = min
    this.max = max
  }
}

/** Statistics of a target's pool. */
export interface TargetStats {
  /** Open connections (physical sockets) of every live generation. */
  readonly size: number
  /** Connections that could take a statement now. */
  readonly available: number
  /** Checkouts waiting for a connection. */
  readonly pending: number
  /** Single statements running. */
  readonly inFlight: number
  /** Connections held exclusively (transactions, streams, `reserve`). */
  readonly reserved: number
  readonly min: number
  readonly max: number
  readonly multiplex: boolean
  /** Pools created for this target so far (a new one per size change). */
  readonly generation: number
  /** The `application_name` its connections carry. */
  readonly applicationName: string
}

export class TargetPool {
  readonly target: Target
  readonly settings: PoolSettings
  readonly applicationName: string
  readonly members = new Set<Member>()
  /** The engine's scope: every generation's scope is a child of it, so closing the engine closes them all. */
  private readonly parent: Scope.Scope
  /** Makes a generation's pool where `use` is called (synchronous, on the first statement of a new size). */
  private readonly runSync: <A, E>(effect: Effect.Effect<A, E>) => A
  /** Closes a retired generation in a fiber of the engine's scope (`release` and `resize` are synchronous). */
  private readonly fork: (effect: Effect.Effect<void>) => void
  current: Generation | undefined = undefined
  readonly retired = new Set<Generation>()
  generations = 0
  inFlight = 0
  /** Of `inFlight`, the statements running on a connection of their own. */
  exclusive = 0
  reserved = 0
  pending = 0
  closed = false
  /**
   * Exclusive checkouts of a multiplexed pool one at a time: sql-pg's `reserve` is a shared checkout and then a
   * pin, so two of them at once can be handed the same connection and run one after the other on it. In turn,
   * each takes its connection out of circulation before the next looks (and the pool grows for the next).
   */
  readonly checkout = Semaphore.makeUnsafe(1)
  /** Whether the role its connections log in as has been checked (`roleCheck.ts`, once per target). */
  roleChecked = false
  /**
   * The most connections this target may open on its server: `serverShare` of the connections the server gives
   * non-superusers (`max_connections` − `superuser_reserved_connections`), read by the role check; unbounded until
   * then. So one project of a large tier cannot take every connection of the server.
   */
  serverCap = Number.POSITIVE_INFINITY
  /** What the role check found wrong with the target's role (empty: nothing, or not checked yet). */
  roleWarnings: ReadonlyArray<string> = []
  /**
   * How long each statement text took lately (milliseconds, a moving average): short ones are pipelined on shared
   * connections, others run on a connection of their own (see `pgSessions.ts`).
   */
  readonly latency = new Map<string, number>()
  /**
   * The fleet's share of the target's connections for this process (`Coordination.ConnectionShares`); undefined
   * without a fleet coordinator.
   */
  readonly share: () => number | undefined
  /** Generations retired or closing whose sockets are not all closed yet (they count against a share). */
  private readonly draining = new Set<Generation>()
  /** Work waiting for a generation to fit in the share. */
  private readonly waiters = new Set<() => void>()

  constructor(
    target: Target,
    settings: PoolSettings,
    parent: Scope.Scope,
    runSync: <A, E>(effect: Effect.Effect<A, E>) => A,
    fork: (effect: Effect.Effect<void>) => void,
    share: () => number | undefined = () => undefined
  ) {
    this.target = target
    this.settings = settings
    this.parent = parent
    this.runSync = runSync
    this.fork = fork
    this.share = share
    const name = settings.tagTargets ? `${settings.applicationName}:${targetTag(target)}` : settings.applicationName
    // application_name is cut by the server at 63 bytes (NAMEDATALEN - 1).
    this.applicationName = Buffer.from(name).subarray(0, 63).toString()
  }

  /** The size the members' tiers call for: the largest minimum and maximum among them, capped. */
  desired(): { readonly min: number; readonly max: number } {
    let min = 0
    let max = 1
    for (const m of this.members) {
      const limits = m.limits()
      if (limits.minPool > min) min = limits.minPool
      if (limits.maxPool > max) max = limits.maxPool
    }
    max = Math.min(max, this.settings.maxConnections, this.serverCap)
    // A share of 0 (none granted yet) is a size of 0: new work waits (`mustWait`) instead of opening anything.
    const share = this.share()
    if (share !== undefined) max = Math.min(max, Math.max(0, Math.floor(share)))
    return { min: Math.min(min, max), max }
  }

  /**
   * The most connections this process may hold to the target from now on: the current generation's size and what
   * retired generations may still hold. A fleet coordinator reads it before it gives a shrunk share's difference
   * to other processes.
   */
  bound(): number {
    const current = this.current
    let n = current === undefined ? 0 : Math.max(current.max, current.sockets) + current.lingering
    for (const gen of this.draining) n += gen.holds()
    return n
  }

  /**
   * Whether new work must wait before it takes a generation: a fleet share is set, no generation is current, and a
   * new one would not fit in the share beside what retired generations may still hold (or the share is 0).
   */
  mustWait(): boolean {
    if (this.current !== undefined || this.closed) return false
    const share = this.share()
    if (share === undefined) return false
    const { max } = this.desired()
    return max === 0 || this.bound() + max > share
  }

  /** Completes when `mustWait` no longer holds (a retired generation drained, the share grew, the pool closed). */
  readonly ready: Effect.Effect<void> = Effect.callback<void>((resume) => {
    if (!this.mustWait()) return resume(Effect.void)
    const waiter = () => resume(Effect.void)
    this.waiters.add(waiter)
    return Effect.sync(() => {
      this.waiters.delete(waiter)
    })
  })

  private wake(): void {
    if (this.waiters.size === 0 || this.mustWait()) return
    const waiters = [...this.waiters]
    this.waiters.clear()
    for (const waiter of waiters) waiter()
  }

  /** Records how long a statement took (a moving average that follows a change within a few runs). */
  observe(sql: string, millis: number): void {
    const before = this.latency.get(sql)
    if (before === undefined && this.latency.size >= latencyEntries) {
      this.latency.delete(this.latency.keys().next().value!)
    }
    this.latency.set(sql, before === undefined ? millis : before + (millis - before) * 0.25)
  }

  /**
   * Starts a new generation on the next use, whatever the size: when a second project joins a target, the sessions
   * the first one used alone (and may have left settings on) are not handed to it.
   */
  renew(): void {
    const gen = this.current
    if (gen === undefined || this.closed) return
    this.current = undefined
    this.retire(gen)
  }

  /** Starts a new generation on the next use when the members' tiers call for another size. */
  resize(): void {
    for (const m of this.members) m.gate.setLimit(m.limits().maxPool)
    const gen = this.current
    // No generation yet (or none since a shrink): work waiting for a larger share may go now.
    if (gen === undefined || this.closed) return this.wake()
    const { min, max } = this.desired()
    // Connections lost (a server restart) and the server answering again: sql-pg's pool keeps the failed slots as
    // its size and replaces them one borrower at a time, so it would stay at the concurrency of its traffic (a
    // minimum of 10 measured at 1). A new generation opens its minimum at once; the old one drains.
    const refill = gen.droppedAt > 0 && gen.okAt > gen.droppedAt && gen.sockets < gen.min
    if (gen.min === min && gen.max === max && !refill) return this.wake()
    this.current = undefined
    this.retire(gen)
    // A refill must not wait for the next statement: the point is to have the minimum ready before traffic.
    if (refill && !this.mustWait()) this.current = this.open()
    this.wake()
  }

  /** The generation new work goes to (created on first use), counted as used until `release`; none once closed. */
  use(): Generation | undefined {
    if (this.closed) return undefined
    const gen = this.current ?? this.open()
    gen.users++
    return gen
  }

  release(gen: Generation): void {
    if (--gen.users === 0 && gen.retired) {
      this.closeGeneration(gen)
      this.wake()
    }
  }

  stats(): TargetStats {
    let size = 0
    for (const gen of this.live()) size += gen.sockets
    const { min, max } = this.current ?? this.desired()
    const shared = this.inFlight - this.exclusive
    const busy =
      this.reserved +
      this.exclusive +
      (this.settings.multiplex ? Math.ceil(shared / this.settings.multiplexConcurrency) : shared)
    return {
      size,
      available: Math.max(0, size - busy),
      pending: this.pending,
      inFlight: this.inFlight,
      reserved: this.reserved,
      min,
      max,
      multiplex: this.settings.multiplex,
      generation: this.generations,
      applicationName: this.applicationName
    }
  }

  /** Closes every generation (waiting for the work they carry). */
  close(): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.closed) return Effect.void
      this.closed = true
      const gens = [...this.live()]
      this.current = undefined
      this.retired.clear()
      this.wake()
      return Effect.forEach(gens, (gen) => this.closeNow(gen), { discard: true, concurrency: "unbounded" })
    })
  }

  private *live(): Iterable<Generation> {
    if (this.current !== undefined) yield this.current
    yield* this.retired
  }

  private open(): Generation {
    const { min, max } = this.desired()
    const scope = Scope.forkUnsafe(this.parent)
    const gen = new Generation(++this.generations, scope, min, max)
    const target = this.target
    const host = target.host.startsWith("[") ? target.host.slice(1, -1) : target.host
    const keepAlive = this.settings.keepAlive
    gen.pool = this.runSync(
      PgPool.make({
        url: target.url,
        applicationName: this.applicationName,
        multiplex: this.settings.multiplex,
        multiplexConcurrency: this.settings.multiplexConcurrency,
        minConnections: min,
        maxConnections: max,
        idleTimeout: this.settings.idleTimeout,
        connectTimeout: this.settings.connectTimeout,
        ...(this.settings.connectionTTL !== undefined ? { connectionTTL: this.settings.connectionTTL } : {}),
        ...(this.settings.prepare !== undefined ? { prepare: this.settings.prepare } : {}),
        ...(this.settings.startupParameters !== undefined
          ? { startupParameters: this.settings.startupParameters }
          : {}),
        // Every socket of the pool (sessions and their cancel requests) is opened here, which is what lets the
        // engine count connections; TLS (sslmode in the URL) is still negotiated by sql-pg over it.
        stream: () => {
          const socket = Net.connect({
            host,
            port: target.port,
            noDelay: true,
            ...(keepAlive !== undefined ? { keepAlive: true, keepAliveInitialDelay: keepAlive } : {})
          })
          gen.sockets++
          if (gen.sockets >= gen.min) gen.filled = true
          socket.once("close", () => {
            gen.sockets--
            if (gen.filled && gen.sockets < gen.min && gen.droppedAt === 0) gen.droppedAt = performance.now()
            // Under a fleet share, a closed socket counts a little longer (its backend may still be ending).
            if (this.share() === undefined) return gen.retired ? this.drained(gen) : undefined
            gen.lingering++
            setTimeout(() => {
              gen.lingering--
              if (gen.retired) this.drained(gen)
            }, lingerMillis).unref()
          })
          return socket
        }
      }).pipe(Scope.provide(scope))
    )
    this.current = gen
    return gen
  }

  private retire(gen: Generation) {
    gen.retired = true
    this.retired.add(gen)
    this.draining.add(gen)
    if (gen.users === 0) this.closeGeneration(gen)
  }

  /** A retired generation's socket closed, or the generation closed: forget it once nothing of it is open. */
  private drained(gen: Generation) {
    if (gen.closed && gen.sockets === 0 && gen.lingering === 0) this.draining.delete(gen)
    this.wake()
  }

  private closeGeneration(gen: Generation) {
    this.retired.delete(gen)
    this.fork(this.closeNow(gen))
  }

  private closeNow(gen: Generation): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (gen.closed) return Effect.void
      gen.closed = true
      return Effect.ensuring(
        Scope.close(gen.scope, Exit.void),
        Effect.sync(() => this.drained(gen))
      )
    })
  }
}
