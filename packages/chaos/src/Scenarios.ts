/**
 * The fault scenarios: the fault rows of RELIABILITY.md's "Coverage of the matrix" that a client library can be put through on one machine, each as
 * a fault on a rig — the network between project A and its server (Toxiproxy), the server process (stop, kill,
 * SIGSTOP), or the server's own commands against A's connections. `inject` makes the fault, holds it for the
 * window and heals it; the runner marks the fault before and the heal after (for a restart, once the server
 * answers again).
 *
 * `own` says whether the fault is project A's alone (its proxy, its backends, its user): then project B, on the
 * same server, must not notice anything. `ci` marks the subset the vitest suite runs.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Faults from "@tenantpool/testing/Faults"
import * as Servers from "@tenantpool/testing/Servers"
import * as Toxiproxy from "@tenantpool/testing/Toxiproxy"
import type { EngineName, Rig } from "./Rig.ts"

/**
 * A scenario.
 *
 * @category models
 * @since 0.1.0
 */
export interface Scenario {
  /** The scenario's row in RELIABILITY.md's "Coverage of the matrix", with a suffix for variants (`R7b`). */
  readonly id: string
  readonly title: string
  /** What is done, for the report. */
  readonly fault: (windowMs: number) => string
  readonly engines: ReadonlyArray<EngineName>
  /** The fault touches project A only; B must see no effect. */
  readonly own: boolean
  /** Part of the CI subset. */
  readonly ci: boolean
  /** Makes the fault, holds it `windowMs`, heals it. */
  readonly inject: (rig: Rig, windowMs: number) => Effect.Effect<void, unknown, Toxiproxy.Toxiproxy>
}

const all: ReadonlyArray<EngineName> = ["postgres", "redis", "mongodb"]
const seconds = (ms: number) => `${(ms / 1000).toFixed(ms % 1000 === 0 ? 0 : 1)} s`

const toxic =
  (make: () => Toxiproxy.Toxic) =>
  (rig: Rig, windowMs: number): Effect.Effect<void, unknown, Toxiproxy.Toxiproxy> =>
    Toxiproxy.withToxic(rig.proxy, make())(Effect.sleep(windowMs))

/** Repeats `effect` every `everyMs` for `windowMs`: connections opened again during the window are hit too. */
const repeatFor = <E>(effect: Effect.Effect<unknown, E>, windowMs: number, everyMs: number) =>
  Effect.gen(function* () {
    const until = Date.now() + windowMs
    while (Date.now() < until) {
      yield* Effect.ignore(effect)
      yield* Effect.sleep(everyMs)
    }
  })

/** Takes the server down (`stop` or `kill`), keeps it down `ms`, starts it again (same port and data). */
const downFor = <E>(
  rig: Rig,
  ms: number,
  takeDown: (server: Servers.ServerHandle) => Effect.Effect<void, E>
): Effect.Effect<void, unknown> =>
  Effect.gen(function* () {
    yield* takeDown(rig.server)
    yield* Effect.sleep(ms)
    yield* Servers.start(rig.server)
  })

/** Kills project A's connections from the server's side (its database's backends, its Redis user's clients). */
const killConnectionsOfA = (rig: Rig): Effect.Effect<number, unknown> =>
  rig.engine === "postgres"
    ? Faults.pgTerminateBackends(rig.server.url, { database: rig.databaseA, applicationNamePrefix: "tenantpool" })
    : Faults.redisClientKill(rig.server.url, (client) => client.user === rig.userA?.name)

/**
 * Every scenario, in report order.
 *
 * @category constants
 * @since 0.1.0
 */
export const scenarios: ReadonlyArray<Scenario> = [
  {
    id: "R5",
    title: "graceful restart",
    fault: (w) => `stop (fast), ${seconds(w)} down, start`,
    engines: all,
    own: false,
    ci: false,
    inject: (rig, w) => downFor(rig, w, (server) => Servers.stop(server, { mode: "fast" }))
  },
  {
    id: "R6",
    title: "crash",
    fault: (w) => `kill -9, ${seconds(w)} down, start`,
    engines: all,
    own: false,
    ci: true,
    inject: (rig, w) => downFor(rig, w, Servers.kill)
  },
  {
    id: "R20",
    title: "long outage",
    fault: (w) => `stop (fast), ${seconds(Math.max(w, 20_000))} down, start`,
    engines: all,
    own: false,
    ci: false,
    // Long enough for the breakers to open and back off past their first reset timeout (Redis 15 s): recovery must
    // still follow the server's return within seconds (active probes), not the backed-off open time.
    inject: (rig, w) => downFor(rig, Math.max(w, 20_000), (server) => Servers.stop(server, { mode: "fast" }))
  },
  {
    id: "R7",
    title: "hung server",
    fault: (w) => `SIGSTOP ${seconds(w)}, SIGCONT`,
    engines: all,
    own: false,
    ci: true,
    inject: (rig, w) => Servers.withPaused(rig.server, Effect.sleep(w))
  },
  {
    id: "R7b",
    title: "hung backends",
    fault: (w) => `SIGSTOP A's backends ${seconds(w)}`,
    engines: ["postgres"],
    own: true,
    ci: false,
    inject: (rig, w) =>
      Effect.scoped(
        Effect.andThen(
          Faults.pgPauseBackends(rig.server.url, { database: rig.databaseA, applicationNamePrefix: "tenantpool" }),
          Effect.sleep(w)
        )
      )
  },
  {
    id: "R8",
    title: "blackhole",
    fault: (w) => `proxy timeout=0 both ways ${seconds(w)}`,
    engines: all,
    own: true,
    ci: true,
    inject: toxic(() => Toxiproxy.blackhole())
  },
  {
    id: "R8d",
    title: "network down",
    fault: (w) => `proxy disabled ${seconds(w)} (refused, open connections closed)`,
    engines: all,
    own: true,
    ci: true,
    inject: (rig, w) => Toxiproxy.withDown(rig.proxy)(Effect.sleep(w))
  },
  {
    id: "R9",
    title: "connection reset",
    fault: (w) => `reset_peer on every reply ${seconds(w)}`,
    engines: all,
    own: true,
    ci: true,
    inject: toxic(() => Toxiproxy.resetPeer(0))
  },
  {
    id: "R4",
    title: "replies slower than the attempt timeout",
    fault: (w) => `latency 1500 ms downstream ${seconds(w)}`,
    engines: all,
    own: true,
    ci: true,
    inject: toxic(() => Toxiproxy.latency(1_500))
  },
  {
    id: "R10",
    title: "latency",
    fault: (w) => `latency 200±50 ms both ways ${seconds(w)}`,
    engines: all,
    own: true,
    ci: false,
    inject: toxic(() => Toxiproxy.latency(200, { jitter: 50, stream: "both" }))
  },
  {
    id: "R11",
    title: "fragmentation",
    fault: (w) => `slicer 16±8 B, 200 µs apart, ${seconds(w)}`,
    engines: all,
    own: true,
    ci: false,
    inject: toxic(() => Toxiproxy.slicer({ averageSize: 16, sizeVariation: 8, delayMicros: 200 }))
  },
  {
    id: "R11b",
    title: "bandwidth",
    fault: (w) => `bandwidth 32 KB/s ${seconds(w)}`,
    engines: all,
    own: true,
    ci: false,
    inject: toxic(() => Toxiproxy.bandwidth(32))
  },
  {
    id: "R12",
    title: "truncated replies",
    fault: (w) => `limit_data 4 KB per connection ${seconds(w)}`,
    engines: all,
    own: true,
    ci: true,
    inject: toxic(() => Toxiproxy.limitData(4_096))
  },
  {
    id: "R5k",
    title: "connections killed by the server",
    fault: (w) => `pg_terminate_backend / CLIENT KILL of A's connections every 250 ms, ${seconds(w)}`,
    engines: ["postgres", "redis"],
    own: true,
    ci: true,
    inject: (rig, w) => repeatFor(killConnectionsOfA(rig), w, 250)
  },
  {
    id: "R15",
    title: "password rotation",
    fault: (w) => `A's password changed and its connections killed, ${seconds(w)}, password restored`,
    engines: ["postgres", "redis"],
    own: true,
    ci: false,
    inject: (rig, w) => {
      const user = rig.userA!
      const set = (password: string) =>
        rig.engine === "postgres"
          ? Faults.pgSetPassword(rig.server.url, user.name, password)
          : Faults.redisSetPassword(rig.server.url, user.name, password)
      return Effect.ensuring(
        Effect.andThen(Effect.andThen(set(`rotated-${Date.now()}`), killConnectionsOfA(rig)), Effect.sleep(w)),
        Effect.ignore(set(user.password))
      )
    }
  },
  {
    id: "R16",
    title: "server connection cap",
    fault: (w) => `CONNECTION LIMIT 1 on A's database, its connections killed, ${seconds(w)}`,
    engines: ["postgres"],
    own: true,
    ci: false,
    inject: (rig, w) =>
      Effect.scoped(
        Effect.gen(function* () {
          yield* Faults.pgConnectionLimit(rig.server.url, rig.databaseA, 1)
          yield* killConnectionsOfA(rig)
          yield* Effect.sleep(w)
        })
      )
  },
  {
    id: "R4p",
    title: "server paused by command",
    fault: (w) => `CLIENT PAUSE ${seconds(w)} (all clients)`,
    engines: ["redis"],
    own: false,
    ci: false,
    inject: (rig, w) =>
      Effect.gen(function* () {
        yield* Faults.redisClientPause(rig.server.url, w)
        yield* Effect.sleep(w)
      })
  }
]

/**
 * The scenarios run for an engine.
 *
 * @category accessors
 * @since 0.1.0
 */
export const forEngine = (
  engine: EngineName,
  options?: { readonly ci?: boolean | undefined }
): ReadonlyArray<Scenario> => scenarios.filter((s) => s.engines.includes(engine) && (options?.ci !== true || s.ci))

/**
 * A scenario by id (`R7`, `r7b`), or undefined.
 *
 * @category accessors
 * @since 0.1.0
 */
export const byId = (id: string): Scenario | undefined => scenarios.find((s) => s.id.toLowerCase() === id.toLowerCase())
