/**
 * The Redis engine's connections: one shared ioredis connection per target, counted by the projects bound to it and
 * closed with the last of them, and per project a small pool of dedicated connections (blocking commands, WATCH
 * transactions), made on first need and closed with the project's binding. Subscriptions open a dedicated
 * connection of their own, outside the pool.
 *
 * A shared connection runs with ioredis's offline queue off and unfulfilled commands never re-sent: a command
 * waits for a (re)connecting connection only within its attempt timeout (`send`), and is dropped, never sent, if
 * the attempt was abandoned meanwhile (see docs/architecture.md).
 *
 * Scripts: the connections also know which projects use which ACL user on a server (`mayRunScripts`), and stop a
 * runaway script from a short-lived connection of their own (`killScripts`).
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Pool from "effect/Pool"
import * as Redacted from "effect/Redacted"
import * as Scope from "effect/Scope"
import { Redis as IORedis } from "ioredis"
import type { ProjectHandle } from "@tenantpool/core/CurrentProject"
import type { AttemptSignal, PoolStats } from "@tenantpool/core/Engine"
import type { Target } from "@tenantpool/core/Target"
import { fromUnknown, RedisError } from "../RedisError.ts"
import * as Pipelining from "./pipelining.ts"

/** What every connection of the engine is opened with, and who may run scripts. */
export interface Settings {
  readonly autoPipelining: boolean
  readonly connectTimeoutMillis: number
  readonly dedicatedIdleMillis: number
  readonly clientName: string
  /** Projects an operator trusts to run scripts whatever their Redis user. */
  readonly trustedScripts: (projectId: string) => boolean
  /** Whether a target's username is the project's own ACL user. */
  readonly ownUser: (projectId: string, username: string) => boolean
}

/** Bound projects by ACL user: `host:port user` → project id → bindings. */
export type Users = Map<string, Map<string, number>>

/** The shared connections of one engine, by target key, and the projects bound per ACL user. */
export interface Connections {
  readonly settings: Settings
  readonly shared: Map<string, SharedConnection>
  readonly users: Users
}

/** A project's binding: its target's shared connection, its key prefix and its dedicated pool. */
export interface Binding {
  readonly shared: SharedConnection
  /** `shared.conn`, one property read closer for the fast path. */
  readonly conn: IORedis
  readonly prefix: string
  readonly project: ProjectHandle
  readonly target: Target
  readonly settings: Settings
  /** The binding's scope: the dedicated pool, made in it on first need, closes with the binding. */
  readonly scope: Scope.Scope
  /** The dedicated pool's size, read from the project's tier when the pool is made. */
  readonly maxDedicated: () => number
  dedicated: Pool.Pool<IORedis, RedisError> | undefined
  /** The operator trusts the project to run scripts. */
  readonly trusted: boolean
  /** The target's username is the project's own ACL user (by the `ownUser` rule). */
  readonly ownUser: boolean
  /** The key of the target's ACL user in `users`. */
  readonly userKey: string
  readonly users: Users
}

/** Counts of a project's dedicated connections. */
export interface DedicatedStats {
  readonly open: number
  readonly inUse: number
  readonly pending: number
}

/** The engine's connections, none open yet. */
export const make = (settings: Settings): Connections => ({ settings, shared: new Map(), users: new Map() })

/** A shared connection, how many bindings use it, and whether its last connection attempt failed. */
export class SharedConnection {
  readonly conn: IORedis
  /** Auto-pipelined, adaptively: written at once when the connection is idle (see `pipelining.ts`). */
  readonly adaptive: boolean
  refs = 0
  /** Why the last connection attempt failed, until the connection is ready again. */
  lastError: RedisError | undefined = undefined
  private waiters: { promise: Promise<void>; resolve: () => void; reject: (e: RedisError) => void } | undefined =
    undefined
  constructor(conn: IORedis) {
    this.conn = conn
    this.adaptive = conn.options.enableAutoPipelining === true && Pipelining.supported(conn)
    conn.on("error", (e: unknown) => {
      if (conn.status === "ready") return
      this.lastError = unsent(fromUnknown("connect")(e))
      // Commands waiting for the connection learn at once that this attempt failed.
      const w = this.waiters
      this.waiters = undefined
      w?.reject(this.lastError)
    })
    conn.on("ready", () => {
      this.lastError = undefined
      const w = this.waiters
      this.waiters = undefined
      w?.resolve()
    })
  }
  /** Resolves when the connection is ready, rejects when the current attempt fails; shared by every waiter. */
  whenReady(): Promise<void> {
    if (this.waiters === undefined) {
      let resolve!: () => void
      let reject!: (e: RedisError) => void
      const promise = new Promise<void>((res, rej) => {
        resolve = res
        reject = rej
      })
      // A rejection nobody awaits (every waiter was abandoned) is not an error of the process.
      promise.catch(() => {})
      this.waiters = { promise, resolve, reject }
    }
    return this.waiters.promise
  }
}

// No command of the caller's was written on a connection that never became ready: a definite failure, whatever
// ioredis says about the socket (e.g. "Connection is closed.").
const unsent = (error: RedisError): RedisError =>
  error.sent ? new RedisError({ kind: error.kind, command: "connect", detail: error.detail, sent: false }) : error

// Where and as whom every connection to `target` connects.
const endpoint = (target: Target) => ({
  host: target.host.startsWith("[") ? target.host.slice(1, -1) : target.host,
  port: target.port,
  ...(target.user !== undefined ? { username: target.user } : {}),
  ...(target.password !== undefined ? { password: Redacted.value(target.password) } : {}),
  ...(target.tls !== "disable" ? { tls: { rejectUnauthorized: target.tls === "verify-full" } } : {})
})

/** A new, not yet connected ioredis connection to `target`. */
export const open = (settings: Settings, target: Target, dedicated: boolean): IORedis => {
  const conn = new IORedis({
    ...endpoint(target),
    db: Number(target.database),
    lazyConnect: true,
    connectionName: dedicated ? `${settings.clientName}:dedicated` : settings.clientName,
    enableOfflineQueue: dedicated,
    autoResendUnfulfilledCommands: false,
    // 0: when a connection closes, ioredis rejects the commands still awaiting a reply (they may have been
    // applied: an unknown outcome). Without this, `autoResendUnfulfilledCommands: false` drops them unsettled,
    // and an auto-pipeline they belonged to never finishes, which stalls every later command on the connection.
    maxRetriesPerRequest: 0,
    enableAutoPipelining: !dedicated && settings.autoPipelining,
    connectTimeout: settings.connectTimeoutMillis,
    enableReadyCheck: true,
    autoResubscribe: true,
    retryStrategy: (times: number) => Math.min(50 * 2 ** Math.min(times, 10), 2_000) + Math.floor(Math.random() * 100),
    reconnectOnError: (err: Error) => err.message.startsWith("READONLY")
  })
  // Without a listener ioredis prints every connection error; the guard reports them instead.
  conn.on("error", () => {})
  return conn
}

/** How long QUIT may take before the socket is dropped anyway (an unresponsive server never answers it). */
const quitTimeout = Duration.seconds(1)

/**
 * Closes a connection: QUIT lets the replies still on their way arrive, then the socket is dropped, after at most
 * `quitTimeout` (on the Clock, so shutdown and the TestClock cover it).
 */
export const quit = (conn: IORedis): Effect.Effect<void> =>
  Effect.promise(() => conn.quit().catch(() => "closed")).pipe(
    Effect.timeoutOption(quitTimeout),
    Effect.ensuring(Effect.sync(() => conn.disconnect()))
  )

// The target's shared connection, opened by its first binding and closed with its last.
const acquireShared = (connections: Connections, target: Target): Effect.Effect<SharedConnection, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      let s = connections.shared.get(target.key)
      if (s === undefined) {
        s = new SharedConnection(open(connections.settings, target, false))
        connections.shared.set(target.key, s)
        // ioredis reconnects by itself from here on; failures reach the waiters through `SharedConnection`.
        s.conn.connect().catch(() => {})
      }
      s.refs++
      return s
    }),
    (s) =>
      Effect.suspend(() => {
        if (--s.refs > 0) return Effect.void
        connections.shared.delete(target.key)
        return quit(s.conn)
      })
  )

// Counts the project among the users of its target's ACL user for as long as the binding lives.
const acquireUser = (users: Users, userKey: string, projectId: string): Effect.Effect<void, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      let projects = users.get(userKey)
      if (projects === undefined) users.set(userKey, (projects = new Map()))
      projects.set(projectId, (projects.get(projectId) ?? 0) + 1)
    }),
    () =>
      Effect.sync(() => {
        const projects = users.get(userKey)
        const n = (projects?.get(projectId) ?? 1) - 1
        if (n > 0) projects?.set(projectId, n)
        else projects?.delete(projectId)
        if (projects?.size === 0) users.delete(userKey)
      })
  )

/** Binds a project to its target: the shared connection now, the dedicated pool on first need. */
export const bind = (
  connections: Connections,
  project: ProjectHandle,
  target: Target,
  prefix: string,
  maxDedicated: () => number
): Effect.Effect<Binding, never, Scope.Scope> =>
  Effect.gen(function* () {
    const scope = yield* Effect.scope
    const shared = yield* acquireShared(connections, target)
    const settings = connections.settings
    const username = target.user ?? "default"
    const userKey = `${target.host}:${target.port} ${username}`
    yield* acquireUser(connections.users, userKey, project.id)
    return {
      shared,
      conn: shared.conn,
      prefix,
      project,
      target,
      settings,
      scope,
      maxDedicated,
      dedicated: undefined,
      trusted: settings.trustedScripts(project.id),
      ownUser: username !== "default" && settings.ownUser(project.id, username),
      userKey,
      users: connections.users
    }
  })

/**
 * Whether the project may run scripts (EVAL, FCALL, `evalScript`): a script can name any key its Redis user can
 * reach, so only on the project's own ACL user (and no other project bound in this process uses that user: a
 * misconfigured registry that gives two projects one user loses scripts for both), or when an operator trusts it.
 */
export const mayRunScripts = (b: Binding): boolean =>
  b.trusted || (b.ownUser && (b.users.get(b.userKey)?.size ?? 0) <= 1)

/** A connected dedicated connection, closed with the scope. */
export const connectDedicated = (settings: Settings, target: Target): Effect.Effect<IORedis, RedisError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: async () => {
        const conn = open(settings, target, true)
        try {
          await conn.connect()
        } catch (e) {
          conn.disconnect()
          throw e
        }
        return conn
      },
      catch: (e) => unsent(fromUnknown("connect")(e))
    }),
    quit
  )

/** The project's pool of dedicated connections, made on first need in the binding's scope. */
export const dedicatedPool = (b: Binding): Effect.Effect<Pool.Pool<IORedis, RedisError>> =>
  Effect.suspend(() => {
    if (b.dedicated !== undefined) return Effect.succeed(b.dedicated)
    return Pool.makeWithTTL({
      acquire: connectDedicated(b.settings, b.target),
      min: 0,
      max: Math.max(1, b.maxDedicated()),
      timeToLive: Duration.millis(b.settings.dedicatedIdleMillis)
    }).pipe(
      Scope.provide(b.scope),
      Effect.tap((pool) =>
        Effect.sync(() => {
          b.dedicated = pool
        })
      )
    )
  })

/**
 * Runs a command on the shared connection now, or once it is ready if the attempt is still on by then. While the
 * last connection attempt failed (refused, wrong password), commands fail at once instead of waiting out their
 * timeout: the breaker learns fast, and a wrong password is reported as such rather than as a timeout. While it
 * waits, the attempt says so (`waitingFor`): should it time out then, nothing was sent and no breaker counts it.
 */
export const send = <A>(b: Binding, signal: AttemptSignal, f: (conn: IORedis) => Promise<A>): Promise<A> => {
  if (b.conn.status === "ready") return call(b.shared, f)
  if (b.shared.lastError !== undefined) return Promise.reject(b.shared.lastError)
  signal.waitingFor("shared connection")
  return b.shared.whenReady().then(() => {
    if (!signal.active) return Promise.reject(abandoned)
    signal.sending()
    return call(b.shared, f)
  })
}

// `f` throwing before it returns a promise sent nothing: the driver refused the call itself.
const call = <A>(shared: SharedConnection, f: (conn: IORedis) => Promise<A>): Promise<A> => {
  try {
    return shared.adaptive ? Pipelining.issue(shared.conn, f) : f(shared.conn)
  } catch (e) {
    const error = fromUnknown("-")(e)
    return Promise.reject(
      error.sent
        ? new RedisError({ kind: error.kind, command: error.command, detail: error.detail, sent: false })
        : error
    )
  }
}

const abandoned = new RedisError({ kind: "timeout", command: "-", detail: "abandoned before sending", sent: false })

/**
 * Stops the script or function running on the target's server (SCRIPT KILL, then FUNCTION KILL) from a connection
 * of its own: the connection that sent the script waits for its reply, and a busy server answers only commands
 * allowed while busy, so this one skips the ready check (INFO) and stays on database 0 (no SELECT). Bounded by the
 * connect timeout; never fails (a script that already wrote cannot be killed: the server says UNKILLABLE).
 */
export const killScripts = (settings: Settings, target: Target): Promise<void> => {
  const conn = new IORedis({
    ...endpoint(target),
    lazyConnect: true,
    connectionName: `${settings.clientName}:kill`,
    disableClientInfo: true,
    enableReadyCheck: false,
    enableOfflineQueue: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: settings.connectTimeoutMillis
  })
  conn.on("error", () => {})
  const bound = setTimeout(() => conn.disconnect(), settings.connectTimeoutMillis + 1_000)
  return conn
    .connect()
    .then(() => Promise.allSettled([conn.call("SCRIPT", "KILL"), conn.call("FUNCTION", "KILL")]))
    .then(
      () => undefined,
      () => undefined
    )
    .finally(() => {
      clearTimeout(bound)
      conn.disconnect()
    })
}

/**
 * PING on the shared connection. It waits for a reconnecting connection (the caller bounds the wait): a probe right
 * after a restart should find the server, not the client's reconnect backoff.
 */
export const ping = (b: Binding): Effect.Effect<void, RedisError> =>
  Effect.tryPromise({
    try: () => (b.conn.status === "ready" ? b.conn.ping() : b.shared.whenReady().then(() => b.conn.ping())),
    catch: fromUnknown("ping")
  })

const noDedicated: DedicatedStats = { open: 0, inUse: 0, pending: 0 }

/** Counts of the project's dedicated connections (none before the pool is made). */
export const dedicatedStats = (b: Binding): DedicatedStats => {
  if (b.dedicated === undefined) return noDedicated
  // The engine contract's `stats` is synchronous (pool gauges read it); `Pool.stats` is a pure `Effect.sync`.
  const s = Effect.runSync(Pool.stats(b.dedicated))
  return { open: s.idle + s.used, inUse: s.used, pending: s.pending }
}

/** The project's pool statistics in the spec's shape: the shared connection and the dedicated ones. */
export const stats = (b: Binding, dedicated: DedicatedStats = dedicatedStats(b)): PoolStats => ({
  size: 1 + dedicated.open,
  available: (b.conn.status === "ready" ? 1 : 0) + dedicated.open - dedicated.inUse,
  pending: dedicated.pending
})

/** The shared connection's state and how many replies it still awaits. */
export const sharedStats = (b: Binding): { readonly status: string; readonly pendingReplies: number } => ({
  status: b.conn.status,
  pendingReplies: (b.conn as unknown as { commandQueue?: { length: number } }).commandQueue?.length ?? 0
})
