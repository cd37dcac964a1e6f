/**
 * The engine contract: what an engine package gives the guard (`EngineAdapter`: driver wiring, error
 * classification, ping, capacity) and what it gets back (`EngineHandle`: `run` / `runEffect` guard one operation
 * for the current project). Operations are described once (`Operation`), errors classified by the engine
 * (`Classification`). See docs/architecture.md for the request path these plug into.
 *
 * @since 0.1.0
 */
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type * as BreakerPolicy from "./BreakerPolicy.ts"
import type { ProjectHandle } from "./CurrentProject.ts"
import type { GuardError, ProtectionError } from "./Errors.ts"
import type { ProtectionDetail } from "./Protections.ts"
import type { Target } from "./Target.ts"
import type { Engine } from "./Vocabulary.ts"

// The names live in the leaf module `Vocabulary.ts` (errors use them too); this module re-exports them.
export { Engine, engines } from "./Vocabulary.ts"

/**
 * How an engine error counts.
 *
 * - `infrastructure`: the server or the path to it is unhealthy (counts toward the project's breaker, may be
 *   retried); otherwise the caller's mistake (never counts).
 * - `shared`: whether it may also count toward the target's breaker, which every project on the target shares
 *   (default: `infrastructure`). An infrastructure error that one call provokes by what it sends (a protocol
 *   violation from its input, a statement the server kills) says nothing about the server: `false`.
 * - `errorType`: a short, bounded label for `db_errors_total`.
 * - `sent`: the request may have reached the server (a failed write is then an unknown outcome).
 *
 * @category models
 * @since 0.1.0
 */
export interface Classification {
  readonly infrastructure: boolean
  readonly shared?: boolean | undefined
  readonly errorType: string
  readonly sent: boolean
}

/**
 * Pool statistics in the spec's shape.
 *
 * @category models
 * @since 0.1.0
 */
export interface PoolStats {
  readonly size: number
  readonly available: number
  readonly pending: number
}

/**
 * What an engine package supplies.
 *
 * @category models
 * @since 0.1.0
 */
export interface EngineAdapter<B, E> {
  readonly engine: Engine
  /** Breaker policy overrides for this engine (merged over the spec's defaults). */
  readonly policy?: BreakerPolicy.BreakerPolicyOverride | undefined
  /**
   * Creates the per-(project, engine) binding, in a scope closed when the project is evicted. Shared, per-target
   * connections are the engine's to keep (and to free when no binding uses them).
   */
  readonly bind: (project: ProjectHandle, target: Target) => Effect.Effect<B, E, Scope.Scope>
  /** Classifies an engine error. */
  readonly classify: (error: E) => Classification
  /** A cheap liveness check (PING, `select 1`, `ping`), used by health checks and active breaker probes. */
  readonly ping: (binding: B) => Effect.Effect<void, E>
  /** How many operations the target accepts at once from this process, across all its projects. */
  readonly targetCapacity: (target: Target) => number
  /** Pool statistics of the target a binding uses. */
  readonly stats?: ((binding: B) => PoolStats) | undefined
}

/**
 * A static description of an operation (define it once per operation, not per call).
 *
 * @category models
 * @since 0.1.0
 */
export interface Operation<B = never> {
  /** The `operation` label: `get`, `find`, `query`, … */
  readonly name: string
  /** Whether running it twice is harmless (only idempotent operations are retried). */
  readonly idempotent: boolean
  /**
   * Whether it changes data (default: `!idempotent`). A write that fails after it may have reached the server is
   * reported as `UnknownOutcome` — for an idempotent write (SET, DEL), once its retries are exhausted.
   */
  readonly write?: boolean | undefined
  /**
   * Whether an attempt that ran to its attempt timeout is retried (default false: it has shown it is slow, and a
   * retry would spend another attempt timeout of server time). Connection-level failures of idempotent operations
   * are retried either way.
   */
  readonly retryOnTimeout?: boolean | undefined
  /** Called when an attempt is abandoned (timeout or interruption), to stop server-side work. */
  readonly cancel?: ((binding: B) => void) | undefined
}

/**
 * What a driver call can ask of the attempt it runs in: `active` turns false once the attempt has been
 * abandoned (timed out or interrupted). A call that waits before sending (for a connection to become ready)
 * must check it before sending, so that nothing reported as failed reaches the server later.
 *
 * @category models
 * @since 0.1.0
 */
export interface AttemptSignal {
  readonly active: boolean
  /**
   * The attempt now waits for a resource of the engine's own (a dedicated connection, a pool checkout): should it
   * time out before `sending`, the caller hears a definite `Timeout` naming the resource (nothing was sent), and
   * no breaker counts it.
   */
  readonly waitingFor: (resource: string) => void
  /** The request is being handed to the driver: from now on it may reach the server. */
  readonly sending: () => void
}

/**
 * Admission held for the life of a scope (a stream, a cursor, a reserved connection): see `EngineHandle.lease`.
 *
 * @category models
 * @since 0.1.0
 */
export interface Lease<B> {
  readonly binding: B
  readonly project: ProjectHandle
  /** The attempt signal of the lease (progress, whether it is still active). */
  readonly signal: AttemptSignal
  /**
   * Fails with the guard's verdict when the lease's time is up (`Timeout` at the tier deadline, `ShuttingDown`):
   * race the work against it (`Stream.interruptWhen`, `Effect.raceFirst`).
   */
  readonly expired: Effect.Effect<never, GuardError>
}

/**
 * The guard, bound to one engine.
 *
 * @category models
 * @since 0.1.0
 */
export interface EngineHandle<B, E> {
  readonly engine: Engine
  readonly policy: BreakerPolicy.BreakerPolicy
  /**
   * Guards a promise-returning driver call for the current project (the fast path). `extraMillis` lengthens the
   * attempt timeout of this call (a blocking command that waits on the server by design). With a `detail`, the
   * installed protections (see `Protections`) check the call first.
   */
  readonly run: {
    <A>(
      op: Operation<B>,
      f: (binding: B, signal: AttemptSignal) => PromiseLike<A>,
      mapError: (cause: unknown) => E,
      extraMillis?: number
    ): Effect.Effect<A, E | GuardError>
    <A>(
      op: Operation<B>,
      f: (binding: B, signal: AttemptSignal) => PromiseLike<A>,
      mapError: (cause: unknown) => E,
      extraMillis: number | undefined,
      detail: ProtectionDetail
    ): Effect.Effect<A, E | GuardError | ProtectionError>
  }
  /** Guards an effectful driver call for the current project (checked by the protections with a `detail`). */
  readonly runEffect: {
    <A, R>(
      op: Operation<B>,
      f: (binding: B, signal: AttemptSignal) => Effect.Effect<A, E, R>,
      extraMillis?: number
    ): Effect.Effect<A, E | GuardError, R>
    <A, R>(
      op: Operation<B>,
      f: (binding: B, signal: AttemptSignal) => Effect.Effect<A, E, R>,
      extraMillis: number | undefined,
      detail: ProtectionDetail
    ): Effect.Effect<A, E | GuardError | ProtectionError, R>
  }
  /**
   * Admission for work that outlives one request: breakers, the project's bulkhead and the target's budget are
   * taken like a call's and held until the scope closes, the tier deadline bounds it (`Lease.expired`, and the
   * operation's `cancel` on abandon), and the scope's exit counts toward the breakers. Streams, cursors, reserved
   * connections and held transactions use it so that nothing escapes the project's limits.
   */
  readonly lease: {
    (op: Operation<B>): Effect.Effect<Lease<B>, E | GuardError, Scope.Scope>
    (op: Operation<B>, detail: ProtectionDetail): Effect.Effect<Lease<B>, E | GuardError | ProtectionError, Scope.Scope>
  }
  /** The current project's binding, for work that manages its own connection (subscriptions). */
  readonly binding: Effect.Effect<{ readonly binding: B; readonly project: ProjectHandle }, E | GuardError>
  /** Records a pool acquire time for the current project's engine and tier. */
  readonly recordAcquire: (project: ProjectHandle, seconds: number) => void
}

/**
 * Whether an operation changes data (`Operation.write`, default `!idempotent`).
 *
 * @category predicates
 * @since 0.1.0
 */
export const isWrite = (op: Operation<any>): boolean => op.write ?? !op.idempotent
