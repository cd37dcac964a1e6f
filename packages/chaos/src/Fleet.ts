/**
 * The fleet scenario of issue #17, on one machine: three processes (`packages/cluster/test/fixtures/fleetMember.ts`,
 * each the tenancy service, the PostgreSQL engine and `@tenantpool/cluster`'s fleet mode) against one private
 * PostgreSQL whose `max_connections` is small, sharing a budget through one private Redis. It drives load on all of
 * them and samples `pg_stat_activity` every 20 ms from outside, through five phases:
 *
 * 1. steady: all members loaded; the budget splits evenly; a FREE project hammered from every member is admitted at
 *    its tier's rate for the fleet, not three times it;
 * 2. crash: one member is SIGKILLed; its share goes to the others once its heartbeat expires;
 * 3. breaker: one member idle, the database stopped; the loaded member's target breaker opens, the idle member's
 *    follows within milliseconds (from the report, without a call of its own); both close when the database is back;
 * 4. outage: Redis stopped; the members keep serving on their fallback shares; they rejoin when it returns.
 *
 * The figures and `checks` are returned (and printed by `npm run chaos -- --scenario fleet`); `packages/cluster/test/Fleet.integration.test.ts`
 * asserts them in CI. The driver does not import the cluster package: it only spawns the member program.
 *
 * @since 0.1.0
 */
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process"
import * as readline from "node:readline"
import { fileURLToPath } from "node:url"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Reactivity from "effect/reactivity/Reactivity"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import type * as SqlClient from "effect/sql/SqlClient"
import * as Servers from "@tenantpool/testing/Servers"

/**
 * Options of the scenario.
 *
 * @category models
 * @since 0.1.0
 */
export interface Options {
  /** Connections the fleet may hold on the database (default 12). */
  readonly budget?: number | undefined
  /** The database's `max_connections` (default 20). */
  readonly maxConnections?: number | undefined
  /** Members' heartbeat/rebalance interval and heartbeat lifetime, ms (default 500 and 2,000). */
  readonly interval?: number | undefined
  readonly ttl?: number | undefined
  /** Length of the steady phase, ms (default 5,000). */
  readonly steadyMillis?: number | undefined
  /** Progress lines (default: none). */
  readonly log?: ((line: string) => void) | undefined
}

/**
 * What the scenario measured.
 *
 * @category models
 * @since 0.1.0
 */
export interface Figures {
  readonly budget: number
  readonly maxConnections: number
  readonly intervalMillis: number
  readonly ttlMillis: number
  /** The most connections of the fleet seen in `pg_stat_activity`, over the whole run, and samples taken. */
  readonly peakConnections: number
  readonly samples: number
  readonly steady: {
    readonly peakConnections: number
    readonly shares: ReadonlyArray<number>
    readonly queriesPerSecond: ReadonlyArray<number>
    readonly errors: number
    /** The FREE project's calls admitted by the fleet, over `seconds`, and what its tier allows (burst + rate × t). */
    readonly rateAdmitted: number
    readonly rateAllowed: number
    readonly seconds: number
  }
  readonly crash: {
    /** From the SIGKILL until the survivors' shares add up to the budget again. */
    readonly regrantMillis: number
    readonly peakConnections: number
    readonly shares: ReadonlyArray<number>
  }
  readonly breaker: {
    /** From the loaded member's target breaker opening to the idle member's. */
    readonly spreadMillis: number
    /** Calls the idle member made while the breaker was open (its errors): 0 means it learned from the report. */
    readonly idleErrors: number
    /** From the database answering again until both members' breakers closed. */
    readonly closeMillis: number
  }
  readonly outage: {
    /** The most connections from Redis stopping to the end of the run (its return and the rejoin included). */
    readonly peakConnections: number
    readonly shares: ReadonlyArray<number>
    /** Queries each member completed while Redis was stopped, and for how long it was. */
    readonly served: ReadonlyArray<number>
    readonly seconds: number
    /** From Redis answering again until both members synced. */
    readonly rejoinMillis: number
  }
}

interface Status {
  readonly t: number
  readonly connected: boolean
  readonly instances: number
  readonly share: number
  readonly held: number
  readonly ok: number
  readonly errors: Record<string, number>
  readonly rateOk: number
  readonly rateRefused: number
}

interface Member {
  readonly id: string
  readonly child: ChildProcessWithoutNullStreams
  status: Status | undefined
  readonly events: Array<{ readonly t: number; readonly event: string }>
  readonly output: Array<string>
  send(command: string): void
}

const memberScript = fileURLToPath(new URL("../../cluster/test/fixtures/fleetMember.ts", import.meta.url))

const errorsOf = (s: Status | undefined) => Object.values(s?.errors ?? {}).reduce((a, b) => a + b, 0)

const spawnMember = (id: string, config: object): Effect.Effect<Member, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const child = spawn(process.execPath, [memberScript, JSON.stringify({ id, ...config })], {
        stdio: ["pipe", "pipe", "pipe"]
      })
      const member: Member = {
        id,
        child,
        status: undefined,
        events: [],
        output: [],
        send: (command) => {
          if (child.exitCode === null && child.signalCode === null) child.stdin.write(command + "\n")
        }
      }
      readline.createInterface({ input: child.stdout }).on("line", (line) => {
        try {
          const parsed = JSON.parse(line) as { status?: boolean; event?: string; t: number }
          if (parsed.status === true) member.status = parsed as unknown as Status
          else if (parsed.event !== undefined) member.events.push({ t: parsed.t, event: parsed.event })
        } catch {
          member.output.push(line)
        }
      })
      readline.createInterface({ input: child.stderr }).on("line", (line) => {
        if (member.output.length < 200) member.output.push(line)
      })
      return member
    }),
    (member) =>
      Effect.promise(
        () =>
          new Promise<void>((resolve) => {
            if (member.child.exitCode !== null || member.child.signalCode !== null) return resolve()
            const timer = setTimeout(() => member.child.kill("SIGKILL"), 5_000)
            member.child.once("exit", () => {
              clearTimeout(timer)
              resolve()
            })
            member.send("exit")
          })
      )
  )

const waitUntil = (what: string, condition: () => boolean, millis: number, members: ReadonlyArray<Member>) =>
  Effect.gen(function* () {
    const start = Date.now()
    while (!condition()) {
      if (Date.now() - start > millis) {
        const detail = members.map((m) => `${m.id}: ${JSON.stringify(m.status)} ${m.output.slice(-5).join(" | ")}`)
        return yield* Effect.die(new Error(`fleet scenario: timed out waiting for ${what}\n${detail.join("\n")}`))
      }
      yield* Effect.sleep("20 millis")
    }
    return Date.now() - start
  })

const pgClient = (url: string) =>
  PgClient.make({ url: Redacted.make(url), maxConnections: 1, applicationName: "fleet-sampler" }).pipe(
    Effect.provide(Reactivity.layer)
  )

/** Connection samples (time, count) of the members' `application_name`s. */
const sampler = (url: string) =>
  Effect.gen(function* () {
    const samples: Array<readonly [number, number]> = []
    let sql: SqlClient.SqlClient | undefined
    const loop = Effect.forever(
      Effect.gen(function* () {
        sql ??= yield* pgClient(url)
        const rows = yield* sql<{ n: number }>`
          select count(*)::int as n from pg_stat_activity where application_name like 'tpfleet-%'`
        samples.push([Date.now(), rows[0]!.n])
      }).pipe(
        // The database is stopped in one phase: start a new client when it is back.
        Effect.catch(() => Effect.sync(() => void (sql = undefined))),
        Effect.andThen(Effect.sleep("20 millis"))
      )
    )
    const fiber = yield* Effect.forkScoped(Effect.scoped(loop))
    const peak = (from: number, to = Number.POSITIVE_INFINITY) =>
      samples.reduce((most, [t, n]) => (t >= from && t <= to && n > most ? n : most), 0)
    return { samples, peak, fiber }
  })

const setMaxConnections = (server: Servers.ServerHandle, n: number) =>
  Effect.gen(function* () {
    yield* Effect.scoped(
      Effect.flatMap(pgClient(server.url), (sql) => sql.unsafe(`alter system set max_connections = ${Math.floor(n)}`))
    )
    yield* Servers.stop(server)
    yield* Servers.start(server)
  })

/**
 * Runs the scenario in the current scope (servers and processes are released with it).
 *
 * @category constructors
 * @since 0.1.0
 */
export const run = (options?: Options | undefined) =>
  Effect.gen(function* () {
    const budget = options?.budget ?? 12
    const maxConnections = options?.maxConnections ?? 20
    const interval = options?.interval ?? 500
    const ttl = options?.ttl ?? 2_000
    const steadyMillis = options?.steadyMillis ?? 5_000
    const log = options?.log ?? (() => {})

    const pg = yield* Servers.acquirePrivate("postgres")
    const redis = yield* Servers.acquirePrivate("redis")
    yield* setMaxConnections(pg, maxConnections)
    const t0 = Date.now()
    log(`servers: postgres ${pg.url} (max_connections ${maxConnections}), redis ${redis.url}`)
    const sampling = yield* sampler(pg.url)

    const config = {
      pg: pg.url,
      redis: redis.url,
      prefix: "fleet:",
      budget,
      interval: `${interval} millis`,
      ttl: `${ttl} millis`
    }
    const members = yield* Effect.forEach(["a", "b", "c"], (id) => spawnMember(id, config))
    const [a, b, c] = members as [Member, Member, Member]
    yield* waitUntil("members to start", () => members.every((m) => m.status?.connected === true), 30_000, members)
    log(`members up at ${Date.now() - t0}ms`)

    // 1. Steady: everyone loaded; the FREE project hammered from everywhere.
    for (const m of members) {
      m.send("load 16")
      m.send("rate on")
    }
    const even = Math.floor(budget / 3)
    yield* waitUntil("an even split", () => members.every((m) => m.status?.share === even), 20_000, members)
    const steadyStart = Date.now()
    log(`steady from ${steadyStart - t0}ms`)
    const before = members.map((m) => m.status!)
    yield* Effect.sleep(steadyMillis)
    const after = members.map((m) => m.status!)
    const seconds = (after[0]!.t - before[0]!.t) / 1000
    const steady = {
      peakConnections: sampling.peak(steadyStart),
      shares: after.map((s) => s.share),
      queriesPerSecond: after.map((s, i) => Math.round((s.ok - before[i]!.ok) / seconds)),
      errors: after.reduce((n, s, i) => n + errorsOf(s) - errorsOf(before[i]), 0),
      rateAdmitted: after.reduce((n, s, i) => n + s.rateOk - before[i]!.rateOk, 0),
      rateAllowed: Math.round(100 + 50 * seconds),
      seconds
    }
    for (const m of members) m.send("rate off")
    log(`steady: ${JSON.stringify(steady)}`)

    // 2. Crash: c is killed; its share goes to a and b once its heartbeat has expired.
    const killed = Date.now()
    log(`kill at ${killed - t0}ms`)
    c.child.kill("SIGKILL")
    yield* waitUntil(
      "the crashed member's share to return",
      () => a.status!.t > killed && a.status!.share + b.status!.share === budget,
      ttl + 10 * interval,
      members
    )
    const regrantMillis = Math.max(a.status!.t, b.status!.t) - killed
    const crashShares = [a.status!.share, b.status!.share]
    yield* Effect.sleep(interval * 2)
    const crashFigures = { regrantMillis, shares: crashShares, peakConnections: sampling.peak(killed) }
    log(`crash: ${JSON.stringify(crashFigures)}`)

    // 3. Breaker: b idle, the database stopped; a's target breaker opens, b's follows from the report.
    b.send("load 0")
    yield* Effect.sleep(500)
    const idleBefore = errorsOf(b.status)
    const stopped = Date.now()
    log(`postgres stopped at ${stopped - t0}ms`)
    yield* Servers.stop(pg, { mode: "fast" })
    yield* waitUntil(
      "both breakers to open",
      () => [a, b].every((m) => m.events.some((e) => e.event === "CircuitOpen" && e.t >= stopped)),
      10_000,
      members
    )
    const openedAt = (m: Member) => m.events.find((e) => e.event === "CircuitOpen" && e.t >= stopped)!.t
    const idleErrors = errorsOf(b.status) - idleBefore
    yield* Servers.start(pg)
    const restarted = Date.now()
    yield* waitUntil(
      "both breakers to close",
      () => [a, b].every((m) => m.events.some((e) => e.event === "CircuitClosed" && e.t >= restarted)),
      15_000,
      members
    )
    const closedAt = (m: Member) => m.events.find((e) => e.event === "CircuitClosed" && e.t >= restarted)!.t
    const breaker = {
      spreadMillis: openedAt(b) - openedAt(a),
      idleErrors,
      closeMillis: Math.max(closedAt(a), closedAt(b)) - restarted
    }
    log(`breaker: ${JSON.stringify(breaker)}`)

    // 4. Outage: both loaded, Redis stopped; they keep serving on their fallback shares, then rejoin.
    b.send("load 16")
    const half = Math.floor(budget / 2)
    yield* waitUntil(
      "an even split of two",
      () => a.status!.share === half && b.status!.share === half,
      20_000,
      members
    )
    const down = Date.now()
    log(`redis stopped at ${down - t0}ms`)
    yield* Servers.stop(redis)
    yield* waitUntil("both to notice", () => !a.status!.connected && !b.status!.connected, 10_000, members)
    const outageBefore = [a.status!, b.status!]
    yield* Effect.sleep(3_000)
    const outageAfter = [a.status!, b.status!]
    yield* Servers.start(redis)
    const back = Date.now()
    yield* waitUntil(
      "both to rejoin",
      () => [a, b].every((m) => m.status!.t > back && m.status!.connected && m.status!.instances === 2),
      15_000,
      members
    )
    const outageFigures = {
      shares: outageAfter.map((s) => s.share),
      served: outageAfter.map((s, i) => s.ok - outageBefore[i]!.ok),
      seconds: (outageAfter[0]!.t - outageBefore[0]!.t) / 1000,
      rejoinMillis: Math.max(a.status!.t, b.status!.t) - back
    }
    // Loaded a while longer: after a rejoin, no member grows for one heartbeat lifetime (the others report first).
    yield* Effect.sleep(ttl + 2 * interval)
    const outage = { ...outageFigures, peakConnections: sampling.peak(down) }
    log(`outage: ${JSON.stringify(outage)}`)
    for (const m of [a, b]) m.send("load 0")
    yield* Fiber.interrupt(sampling.fiber)
    const over = sampling.samples.filter(([, n]) => n > budget)
    if (over.length > 0)
      log(
        `over budget: ${over
          .slice(0, 20)
          .map(([t, n]) => `${t - t0}ms:${n}`)
          .join(" ")}`
      )

    const figures: Figures = {
      budget,
      maxConnections,
      intervalMillis: interval,
      ttlMillis: ttl,
      peakConnections: sampling.peak(0),
      samples: sampling.samples.length,
      steady,
      crash: crashFigures,
      breaker,
      outage
    }
    return figures
  })

/**
 * One property of the fleet scenario, held or broken, with the figure that decides it.
 *
 * @category models
 * @since 0.1.0
 */
export interface Check {
  readonly name: string
  readonly ok: boolean
  readonly detail: string
}

/**
 * The scenario's properties (the CI test asserts that none is broken; `npm run chaos` prints them). The bounds on
 * times leave room for a loaded 2-core machine: a crashed member's share comes back once its heartbeat lifetime has
 * passed and within the next sync of each survivor (`ttl + interval`, plus scheduling); a breaker report travels
 * through Redis pub/sub (milliseconds).
 *
 * @category checks
 * @since 0.1.0
 */
export const checks = (f: Figures): ReadonlyArray<Check> => {
  const { budget, ttlMillis: ttl, intervalMillis: interval } = f
  const check = (name: string, ok: boolean, detail: string): Check => ({ name, ok, detail })
  const even = Math.floor(budget / 3)
  const half = Math.floor(budget / 2)
  return [
    check("sampled", f.samples >= 300, `${f.samples} samples of pg_stat_activity`),
    check("withinBudget", f.peakConnections <= budget, `peak ${f.peakConnections} connections, budget ${budget}`),
    check(
      "evenSplit",
      f.steady.shares.every((s) => s === even),
      `steady shares ${f.steady.shares.join("/")}`
    ),
    check(
      "budgetUsed",
      f.steady.peakConnections === budget,
      `steady peak ${f.steady.peakConnections} of ${budget} under load`
    ),
    check(
      "allServed",
      f.steady.queriesPerSecond.every((q) => q > 20) && f.steady.errors === 0,
      `steady ${f.steady.queriesPerSecond.join("/")} queries/s, ${f.steady.errors} errors`
    ),
    check(
      "fleetRate",
      f.steady.rateAdmitted <= f.steady.rateAllowed && f.steady.rateAdmitted >= 0.5 * 50 * f.steady.seconds,
      `FREE project admitted ${f.steady.rateAdmitted} calls in ${f.steady.seconds} s from 3 members, tier allows ${f.steady.rateAllowed}`
    ),
    check(
      "crashRegrant",
      f.crash.shares.every((s) => s === half) &&
        f.crash.regrantMillis >= ttl - interval - 200 &&
        f.crash.regrantMillis <= ttl + 3 * interval + 500,
      `shares ${f.crash.shares.join("/")} ${f.crash.regrantMillis} ms after the SIGKILL (ttl ${ttl} ms, interval ${interval} ms)`
    ),
    check("crashWithinBudget", f.crash.peakConnections <= budget, `peak ${f.crash.peakConnections} after the crash`),
    check(
      "breakerSpread",
      f.breaker.spreadMillis < 1_000 && f.breaker.idleErrors === 0,
      `idle member opened ${f.breaker.spreadMillis} ms after the loaded one, with ${f.breaker.idleErrors} calls of its own`
    ),
    check("breakerClose", f.breaker.closeMillis < 10_000, `both closed ${f.breaker.closeMillis} ms after the restart`),
    check(
      "outageWithinBudget",
      f.outage.peakConnections <= budget && f.outage.shares.every((s) => s <= half),
      `Redis down: peak ${f.outage.peakConnections}, shares ${f.outage.shares.join("/")} (≤ ${budget} / 2)`
    ),
    check(
      "outageServed",
      f.outage.served.every((n) => n > 50),
      `${f.outage.served.join("/")} queries in ${f.outage.seconds} s without Redis`
    ),
    check("rejoin", f.outage.rejoinMillis < 5_000, `rejoined ${f.outage.rejoinMillis} ms after Redis returned`)
  ]
}
