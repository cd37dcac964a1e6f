/**
 * Runs one scenario on one rig: opens the library afresh, drives steady load as both projects (unique-id writes,
 * two-write transactions where the server has them, reads of seeded keys), makes the fault, heals it, waits for
 * project A's first success, stops the load, reads the final state with the raw driver, closes the library and
 * counts what it left on the server. Every operation goes into the history; `Checker.check` turns it into figures.
 *
 * @since 0.1.0
 */
import * as crypto from "node:crypto"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as Canary from "@tenantpool/testing/Canary"
import * as Toxiproxy from "@tenantpool/testing/Toxiproxy"
import * as Checker from "./Checker.ts"
import * as History from "./History.ts"
import * as mongoRig from "./internal/mongoRig.ts"
import * as pgRig from "./internal/pgRig.ts"
import * as redisRig from "./internal/redisRig.ts"
import * as Outcome from "./Outcome.ts"
import { defaultProfile, type EngineName, type Library, type Profile, type Rig, valueOf } from "./Rig.ts"
import type { Scenario } from "./Scenarios.ts"

/**
 * How long each phase lasts.
 *
 * @category models
 * @since 0.1.0
 */
export interface RunOptions {
  readonly profile?: Profile | undefined
  /** Load before the fault (default 1 s). */
  readonly warmupMs?: number | undefined
  /** How long the fault is held (default 3 s). */
  readonly windowMs?: number | undefined
  /** How long to wait for project A's first success after the heal (default 30 s). */
  readonly recoveryTimeoutMs?: number | undefined
  /** Load after the recovery (default 1 s). */
  readonly observeMs?: number | undefined
  /** Concurrent writers / readers of project A (default 4 / 2); B runs half as many. */
  readonly writers?: number | undefined
  readonly readers?: number | undefined
}

/**
 * The result of one scenario on one engine, everything the report and the assertions need.
 *
 * @category models
 * @since 0.1.0
 */
export interface Result {
  readonly scenario: string
  readonly title: string
  readonly engine: EngineName
  readonly fault: string
  /** Project A's fault is its own: B's disturbances are cross-project effects. */
  readonly own: boolean
  readonly figures: Checker.Figures
  /** B's operations that went wrong, when the fault was not B's (else null). */
  readonly crossProject: number | null
  /** The library's connections on the server after it was closed (server-side count). */
  readonly leakedServerConns: number
  readonly serverConns: { readonly before: number; readonly peak: number; readonly after: number }
  /** Project A's connections on the server once it had recovered (PostgreSQL: should be at least the tier's min). */
  readonly poolAfterRecovery: number
  /** Occurrences of A's password in errors, logs and events (never the password itself). */
  readonly secretLeaks: { readonly errors: number; readonly logs: number; readonly events: number }
  /** Breaker transitions of project A and its target, as `<scope>:<state>@<ms from the fault>`. */
  readonly breaker: ReadonlyArray<string>
  /** From the fault to the first opening of A's or its target's breaker (null: none opened). */
  readonly breakerOpenMs: number | null
  readonly boundMs: number
  readonly durationMs: number
  readonly rssDeltaMB: number
  readonly marks: ReadonlyArray<History.Mark>
}

/**
 * Sets up the rig of an engine (private server, Toxiproxy proxy, projects, seeds), removed with the scope.
 *
 * @category constructors
 * @since 0.1.0
 */
export const acquireRig = (engine: EngineName): Effect.Effect<Rig, unknown, Scope.Scope | Toxiproxy.Toxiproxy> => {
  switch (engine) {
    case "postgres":
      return pgRig.acquire
    case "redis":
      return redisRig.acquire
    case "mongodb":
      return mongoRig.acquire
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Load

interface Load {
  running: boolean
  seq: number
  scanned: Map<string, number>
  errorLeaks: number
}

const SCANS_PER_TAG = 50

const texts = (error: unknown): ReadonlyArray<string> => {
  const out = [String(error), Cause.pretty(Cause.fail(error))]
  try {
    out.push(JSON.stringify(error, (_, v) => (typeof v === "bigint" ? String(v) : v)))
  } catch {
    // circular: the other forms stay
  }
  if (error instanceof Error && error.stack !== undefined) out.push(error.stack)
  return out
}

/** One worker: operations back to back (a short pause after a failure), until the load stops. */
const worker = (
  history: History.History,
  load: Load,
  canary: Canary.Canary,
  party: History.Party,
  kind: History.OpKind,
  runId: string,
  library: Library,
  rig: Rig,
  boundMs: number
) =>
  Effect.gen(function* () {
    while (load.running) {
      const n = load.seq++
      const ids =
        kind === "read"
          ? [rig.keys[n % rig.keys.length]!]
          : kind === "tx"
            ? [`${runId}:${party}:t${n}:1`, `${runId}:${party}:t${n}:2`]
            : [`${runId}:${party}:${n}`]
      const op: Effect.Effect<unknown, unknown> =
        kind === "read"
          ? library.read(party, ids[0]!)
          : kind === "tx"
            ? library.tx!(party, [ids[0]!, ids[1]!])
            : library.write(party, ids[0]!)
      const invokedAt = history.now()
      // A watchdog far past the bound, so that a hung operation ends the run instead of hanging it.
      const exit = yield* Effect.exit(Effect.timeoutOption(op, boundMs * 3))
      const completedAt = history.now()
      const hung = Exit.isSuccess(exit) && exit.value._tag === "None"
      const verdict = hung
        ? { outcome: "unknown" as const, tag: "Hung", defect: false, unclassified: false, error: undefined }
        : Outcome.ofExit(Exit.map(exit, () => undefined))
      const value = Exit.isSuccess(exit) && exit.value._tag === "Some" ? exit.value.value : undefined
      history.ops.push({
        party,
        kind,
        ids,
        invokedAt,
        completedAt,
        outcome: verdict.outcome,
        tag: verdict.tag,
        defect: verdict.defect,
        unclassified: verdict.unclassified,
        badRead: kind === "read" && verdict.outcome === "ok" && value !== valueOf(ids[0]!),
        boundMs
      })
      if (verdict.error !== undefined && (load.scanned.get(verdict.tag) ?? 0) < SCANS_PER_TAG) {
        load.scanned.set(verdict.tag, (load.scanned.get(verdict.tag) ?? 0) + 1)
        if (texts(verdict.error).some((text) => canary.leaks(text).length > 0)) load.errorLeaks++
      }
      yield* Effect.sleep(verdict.outcome === "ok" ? "2 millis" : "20 millis")
    }
  })

const startLoad = (
  history: History.History,
  load: Load,
  canary: Canary.Canary,
  rig: Rig,
  library: Library,
  runId: string,
  boundMs: number,
  options: RunOptions
) => {
  const writers = options.writers ?? 4
  const readers = options.readers ?? 2
  const plan: Array<readonly [History.Party, History.OpKind]> = []
  for (const party of ["a", "b"] as const) {
    const share = party === "a" ? 1 : 0.5
    for (let i = 0; i < Math.max(1, Math.round(writers * share)); i++) plan.push([party, "write"])
    for (let i = 0; i < Math.max(1, Math.round(readers * share)); i++) plan.push([party, "read"])
    if (library.tx !== undefined) plan.push([party, "tx"])
  }
  return Effect.forEach(plan, ([party, kind]) =>
    Effect.forkChild(worker(history, load, canary, party, kind, runId, library, rig, boundMs))
  )
}

// ---------------------------------------------------------------------------------------------------------------
// Phases

/** Polls `check` every 50 ms until it holds or `timeoutMs` passes; true when it held. */
const waitUntil = (check: () => boolean, timeoutMs: number) =>
  Effect.gen(function* () {
    const until = Date.now() + timeoutMs
    while (!check()) {
      if (Date.now() >= until) return false
      yield* Effect.sleep("50 millis")
    }
    return true
  })

const sampleConnections = (rig: Rig, who: History.Party | "all") =>
  Effect.orElseSucceed(Effect.timeoutOption(rig.truth.connections(who), "3 seconds"), () => undefined).pipe(
    Effect.map((n) => (n !== undefined && n._tag === "Some" ? n.value : undefined))
  )

/** Reads the final state, retrying while the server is still coming back. */
const finalState = (rig: Rig, runId: string) =>
  Effect.all({ a: rig.truth.finalIds("a", runId), b: rig.truth.finalIds("b", runId) }).pipe(
    Effect.retry({ times: 20, schedule: Schedule.spaced("500 millis") })
  )

/** Breaker transitions of project A and of its target, as `<scope>:<state>@<ms since the run started>`. */
const breakerTimeline = (library: Library, rig: Rig, epoch: number) =>
  Effect.map(library.events, (events) =>
    events.flatMap((event) =>
      (event._tag === "CircuitOpen" || event._tag === "CircuitHalfOpen" || event._tag === "CircuitClosed") &&
      (event.scope === "target" || event.projectId === rig.projects.a)
        ? [`${event.scope}:${event._tag.slice(7).toLowerCase()}@${Math.round(event.at - epoch)}`]
        : []
    )
  )

const firstOpening = (timeline: ReadonlyArray<string>): number | null => {
  const at = timeline.filter((t) => t.includes(":open@")).map((t) => Number(t.slice(t.indexOf("@") + 1)))
  const after = at.filter((ms) => ms >= 0)
  return after.length === 0 ? null : Math.min(...after)
}

/**
 * Runs a scenario on a rig and returns its result.
 *
 * @category running
 * @since 0.1.0
 */
export const run = (rig: Rig, scenario: Scenario, options: RunOptions = {}): Effect.Effect<Result, unknown> =>
  Effect.gen(function* () {
    const scope = yield* Scope.make()
    const load: Load = { running: true, seq: 0, scanned: new Map(), errorLeaks: 0 }
    // A run that fails half-way (a server that does not come back) still stops its load and closes its library.
    return yield* runIn(rig, scenario, options, scope, load).pipe(
      Effect.onError(() =>
        Effect.andThen(
          Effect.sync(() => {
            load.running = false
          }),
          Effect.ignore(Effect.timeoutOption(Scope.close(scope, Exit.void), "15 seconds"))
        )
      )
    )
  })

const runIn = (rig: Rig, scenario: Scenario, options: RunOptions, scope: Scope.Closeable, load: Load) =>
  Effect.gen(function* () {
    const profile = options.profile ?? defaultProfile
    const windowMs = options.windowMs ?? 3_000
    const canary = Canary.of(rig.secret ?? Canary.make().secret)
    const history = History.make()
    const epoch = Date.now() - history.now()
    const rssBefore = process.memoryUsage().rss
    const runId = `r${crypto.randomBytes(5).toString("hex")}`
    const library = yield* rig.open(profile, canary.captureLogs).pipe(Scope.provide(scope))
    const fibers = yield* startLoad(history, load, canary, rig, library, runId, profile.deadlineMs, options).pipe(
      Effect.provide(canary.captureLogs)
    )
    let peak = 0
    const sampler = yield* Effect.forkChild(
      Effect.forever(
        Effect.andThen(
          Effect.map(sampleConnections(rig, "all"), (n) => {
            if (n !== undefined && n > peak) peak = n
          }),
          Effect.sleep("250 millis")
        )
      )
    )
    yield* Effect.sleep(options.warmupMs ?? 1_000)
    const before = (yield* sampleConnections(rig, "all")) ?? 0

    const faultAt = history.mark("fault", scenario.fault(windowMs))
    yield* scenario.inject(rig, windowMs).pipe(Effect.provideService(Toxiproxy.Toxiproxy, rig.toxiproxy))
    const healAt = history.mark("heal")
    const recovered = yield* waitUntil(
      () => history.ops.some((op) => op.party === "a" && op.outcome === "ok" && op.invokedAt >= healAt),
      options.recoveryTimeoutMs ?? 30_000
    )
    if (recovered) history.mark("recovered")
    yield* Effect.sleep(options.observeMs ?? 1_000)
    const poolAfterRecovery = (yield* sampleConnections(rig, "a")) ?? 0

    load.running = false
    yield* Effect.forEach(fibers, Fiber.join, { discard: true })
    history.mark("stop")
    yield* Fiber.interrupt(sampler)
    yield* Effect.sleep("300 millis")
    const final = yield* finalState(rig, runId)
    const after = (yield* sampleConnections(rig, "all")) ?? 0
    const events = yield* library.events
    const breaker = yield* breakerTimeline(library, rig, epoch + faultAt)

    // Close the library, then count what it left on the server.
    yield* Scope.close(scope, Exit.void).pipe(Effect.timeoutOption("15 seconds"))
    let leaked = 0
    for (let i = 0; i < 50; i++) {
      leaked = (yield* sampleConnections(rig, "all")) ?? leaked
      if (leaked === 0) break
      yield* Effect.sleep("100 millis")
    }

    const figures = Checker.check(history, final)
    const leaksIn = (items: ReadonlyArray<string>) => items.filter((text) => canary.leaks(text).length > 0).length
    return {
      scenario: scenario.id,
      title: scenario.title,
      engine: rig.engine,
      fault: scenario.fault(windowMs),
      own: scenario.own,
      figures,
      crossProject: scenario.own ? Checker.disturbed(figures.b) : null,
      leakedServerConns: leaked,
      serverConns: { before, peak, after },
      poolAfterRecovery,
      secretLeaks: {
        errors: load.errorLeaks,
        logs: leaksIn(canary.logs),
        events: leaksIn(events.map((event) => JSON.stringify(event)))
      },
      breaker,
      breakerOpenMs: firstOpening(breaker),
      boundMs: profile.deadlineMs,
      durationMs: history.now(),
      rssDeltaMB: Math.round(((process.memoryUsage().rss - rssBefore) / 1_048_576) * 10) / 10,
      marks: history.marks.map((m) => ({ ...m, at: Math.round(m.at - faultAt) }))
    } satisfies Result
  })
