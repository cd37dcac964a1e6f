/**
 * Real PostgreSQL, Redis and MongoDB-wire servers for tests. A server comes from, in order: a URL in the
 * environment, local binaries started on a free loopback port with a throwaway data directory, or testcontainers
 * when a Docker engine answers. When none can be had the error says how to get one.
 *
 * Local servers can be stopped, restarted (same port, same data), killed, paused and resumed, from any process:
 * the controls act through a record file in the server's directory (see `ServerInfo.dir`), so a vitest worker can
 * control a server the global setup started. Fault tests should use their own `startPrivateServer` /
 * `acquirePrivate` instance rather than stop the shared one under other test files.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { dockerAvailable, startContainer } from "./internal/containers.ts"
import { probe } from "./internal/drivers.ts"
import * as Kinds from "./internal/kinds.ts"
import { containerImage, envVars, productName } from "./internal/kinds.ts"
import type * as Local from "./internal/local.ts"
import {
  closeLocal,
  DEFAULT_READY_TIMEOUT_MS,
  findLauncher,
  killLocal,
  pauseLocal,
  pidOf,
  restartLocal,
  resumeLocal,
  startLocal,
  stopLocal
} from "./internal/local.ts"
import { ServerControlError, ServerStartError, ServerUnavailableError } from "./ServerError.ts"

/**
 * The three engines the harness provides; `mongodb` is FerretDB locally, `mongo:7` in a container.
 *
 * @category models
 * @since 0.1.0
 */
export type ServerKind = Kinds.ServerKind

/**
 * PostgreSQL's shutdown modes; Redis and FerretDB treat smart and fast as a graceful stop, immediate as a crash.
 *
 * @category models
 * @since 0.1.0
 */
export type StopMode = Local.StopMode

/**
 * Options of `stop`: the mode, and how long to wait before escalating to SIGQUIT/SIGKILL.
 *
 * @category models
 * @since 0.1.0
 */
export type StopOptions = Local.StopOptions

/**
 * The server kinds, in the order the harness starts and reports them.
 *
 * @category constants
 * @since 0.1.0
 */
export const serverKinds: ReadonlyArray<ServerKind> = Kinds.serverKinds

/**
 * Where a server came from: an environment URL, local binaries, or a testcontainers container.
 *
 * @category models
 * @since 0.1.0
 */
export type ServerSource = "env" | "local" | "testcontainers"

/**
 * The serialisable description of a server (what the global setup hands to test workers).
 *
 * @category models
 * @since 0.1.0
 */
export interface ServerInfo {
  readonly kind: ServerKind
  /** A plain connection URL, e.g. `postgres://postgres@127.0.0.1:54012/postgres`. */
  readonly url: string
  readonly host: string
  readonly port: number
  /** As the server reports it: `15.18`, `7.0.15`, `7.0.42 (FerretDB v1.24.2)`. */
  readonly version: string
  readonly source: ServerSource
  /** Local servers only: the directory with the data, the log and the record the controls act on. */
  readonly dir?: string | undefined
  /** Local servers only: the server's stdout and stderr. */
  readonly logFile?: string | undefined
}

/**
 * A server plus its controls. Controls work for `local` servers only and fail with `ServerControlError` otherwise.
 *
 * @category models
 * @since 0.1.0
 */
export interface ServerHandle extends ServerInfo {
  /** Stops the server and waits for its exit; a paused server is resumed first. No-op when already stopped. */
  readonly stop: (options?: StopOptions) => Promise<void>
  /** Starts a stopped or killed server on the same port and data directory; resolves once it answers. */
  readonly start: () => Promise<void>
  /** SIGKILL to the server and every process under it (PostgreSQL backends included): a crash. */
  readonly kill: () => Promise<void>
  /** SIGSTOP to the server and its children: it holds its connections but answers nothing. */
  readonly pause: () => Promise<void>
  /** SIGCONT to the server and its children. */
  readonly resume: () => Promise<void>
  /** The current server process id (the postmaster for PostgreSQL); changes on every `start`. */
  readonly pid: () => number
  /** Releases the server if this handle owns it (stop and delete, or stop the container); otherwise does nothing. */
  readonly close: () => Promise<void>
}

/**
 * Options of `resolveServer` / `acquire`.
 *
 * @category models
 * @since 0.1.0
 */
export interface ResolveOptions {
  /** Where the URL variables are read; `process.env` by default. */
  readonly env?: Readonly<Record<string, string | undefined>> | undefined
  /** Bound on waiting for a started (or configured) server to answer; 60 s by default. */
  readonly readyTimeoutMs?: number | undefined
}

const errorText = (error: unknown): string => (error instanceof Error ? error.message : String(error))

const unsupported = (info: ServerInfo, operation: string) => (): never => {
  throw new ServerControlError({
    kind: info.kind,
    operation,
    message:
      `${operation}: the ${info.kind} server at ${info.host}:${info.port} came from ${info.source === "env" ? "the environment" : "testcontainers"}; ` +
      `stop/start/kill/pause/resume/pid need a local server (install the binaries with \`npm run services:install\`) ` +
      `and fault tests should use their own: startPrivateServer("${info.kind}") or Servers.acquirePrivate("${info.kind}")`
  })
}

const makeHandle = (info: ServerInfo, close: () => Promise<void>): ServerHandle => {
  const dir = info.dir
  if (info.source !== "local" || dir === undefined) {
    return {
      ...info,
      stop: async () => unsupported(info, "stop")(),
      start: async () => unsupported(info, "start")(),
      kill: async () => unsupported(info, "kill")(),
      pause: async () => unsupported(info, "pause")(),
      resume: async () => unsupported(info, "resume")(),
      pid: unsupported(info, "pid"),
      close
    }
  }
  return {
    ...info,
    stop: (options) => stopLocal(info.kind, dir, options),
    start: () => restartLocal(info.kind, dir),
    kill: () => killLocal(info.kind, dir),
    pause: () => pauseLocal(info.kind, dir),
    resume: () => resumeLocal(info.kind, dir),
    pid: () => pidOf(info.kind, dir),
    close
  }
}

/**
 * A handle on a server described by `info` (as provided by the global setup). Its controls act on the server's
 * record, so they work in any process; `close` does nothing: the server belongs to whoever started it.
 *
 * @category constructors
 * @since 0.1.0
 */
export const attach = (info: ServerInfo): ServerHandle => makeHandle(info, async () => {})

const toInfo = (handle: ServerHandle): ServerInfo => ({
  kind: handle.kind,
  url: handle.url,
  host: handle.host,
  port: handle.port,
  version: handle.version,
  source: handle.source,
  ...(handle.dir !== undefined ? { dir: handle.dir } : {}),
  ...(handle.logFile !== undefined ? { logFile: handle.logFile } : {})
})

/**
 * The serialisable part of a handle, e.g. to pass it to another process and `attach` it there.
 *
 * @category accessors
 * @since 0.1.0
 */
export const info: (handle: ServerHandle) => ServerInfo = toInfo

const defaultPort: Record<ServerKind, number> = { postgres: 5432, redis: 6379, mongodb: 27017 }

const fromEnv = async (kind: ServerKind, name: string, url: string, timeoutMs: number): Promise<ServerHandle> => {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw new ServerStartError({ kind, message: `${name} is not a valid URL` })
  }
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      const version = await probe(kind, url, 3_000)
      const host = parsed.hostname
      const port = parsed.port === "" ? defaultPort[kind] : Number(parsed.port)
      return makeHandle({ kind, url, host, port, version, source: "env" }, async () => {})
    } catch (error) {
      if (Date.now() >= deadline) {
        // The URL may carry a password: name the variable and the host, never the URL.
        throw new ServerStartError({
          kind,
          message:
            `${kind}: the server in ${name} (${parsed.hostname}:${parsed.port || defaultPort[kind]}) did not answer within ${timeoutMs} ms: ` +
            `${errorText(error).replace(/\.+$/, "")}. Start it (e.g. \`npm run services:start\`) or unset ${name} to let the harness start one.`
        })
      }
      await new Promise((resolve) => setTimeout(resolve, 250))
    }
  }
}

/**
 * Options of `startPrivateServer` / `acquirePrivate`.
 *
 * @category models
 * @since 0.1.0
 */
export interface PrivateOptions {
  /** Bound on waiting for the started server to answer; 60 s by default. */
  readonly readyTimeoutMs?: number | undefined
  /**
   * Acknowledged writes survive `kill`: PostgreSQL with `synchronous_commit=on`, Redis with an AOF synced on every
   * write (`appendfsync always`); FerretDB's SQLite always is. For tests that count lost writes across crashes.
   * Local servers only (a container is what its image makes it).
   */
  readonly durable?: boolean | undefined
}

const localHandle = async (
  kind: ServerKind,
  readyTimeoutMs: number,
  launch: Local.LaunchOptions = {}
): Promise<ServerHandle | undefined> => {
  const { launcher } = findLauncher(kind)
  if (launcher === undefined) return undefined
  const record = await startLocal(launcher, { readyTimeoutMs, launch })
  return makeHandle(
    {
      kind,
      url: record.url,
      host: record.host,
      port: record.port,
      version: record.version,
      source: "local",
      dir: record.dir,
      logFile: record.logFile
    },
    () => closeLocal(kind, record.dir)
  )
}

const containerHandle = async (kind: ServerKind, readyTimeoutMs: number): Promise<ServerHandle> => {
  try {
    const container = await startContainer(kind, Math.max(readyTimeoutMs, 120_000))
    return makeHandle(
      {
        kind,
        url: container.url,
        host: container.host,
        port: container.port,
        version: container.version,
        source: "testcontainers"
      },
      container.stop
    )
  } catch (error) {
    throw new ServerStartError({
      kind,
      message: `${kind}: testcontainers could not start ${containerImage[kind]}: ${errorText(error)}`
    })
  }
}

const envExample: Record<ServerKind, string> = {
  postgres: "postgres://postgres@127.0.0.1:5432/postgres",
  redis: "redis://127.0.0.1:6379",
  mongodb: "mongodb://127.0.0.1:27017/"
}

const unavailable = (kind: ServerKind, tried: ReadonlyArray<string>, withEnv: boolean): ServerUnavailableError =>
  new ServerUnavailableError({
    kind,
    message: [
      `No ${productName[kind]} server for the tests (${kind}). Tried:`,
      ...tried.map((line) => `  - ${line}`),
      "Get one, then run the tests again:",
      "  - npm run services:install   installs PostgreSQL 15 and Redis (apt-get, needs root or sudo, Debian/Ubuntu)",
      "                               and builds FerretDB into ~/.cache/tenantpool/bin (Go module proxy)",
      ...(withEnv
        ? [
            `  - ${envVars[kind][0]}=${envExample[kind]}   use a server you already run`,
            "      (`npm run services:start` starts all three and writes them to .tenantpool/services.env)"
          ]
        : []),
      `  - start a Docker engine      testcontainers then runs ${containerImage[kind]}`
    ].join("\n")
  })

const fromLocalOrContainer = async (
  kind: ServerKind,
  readyTimeoutMs: number,
  tried: Array<string>,
  withEnv: boolean,
  launch?: Local.LaunchOptions
): Promise<ServerHandle> => {
  const { searched } = findLauncher(kind)
  const local = await localHandle(kind, readyTimeoutMs, launch)
  if (local !== undefined) return local
  tried.push(`local binaries: not found (looked in ${searched.join(", ")})`)
  const docker = await dockerAvailable()
  if (docker.ok) return containerHandle(kind, readyTimeoutMs)
  tried.push(`testcontainers: no Docker engine answers (${docker.reason})`)
  throw unavailable(kind, tried, withEnv)
}

/**
 * Finds or starts a server: the URL in `TENANTPOOL_PG_URL`/`DATABASE_URL` (`…REDIS_URL`, `…MONGODB_URL`), else local
 * binaries on a free loopback port, else a testcontainers container. Rejects with `ServerUnavailableError` when
 * there is none, or `ServerStartError` when the chosen one does not come up. Call `close()` on the handle.
 *
 * @category constructors
 * @since 0.1.0
 */
export const resolveServer = async (kind: ServerKind, options: ResolveOptions = {}): Promise<ServerHandle> => {
  const env = options.env ?? process.env
  const readyTimeoutMs = options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS
  for (const name of envVars[kind]) {
    const url = env[name]
    if (url !== undefined && url.trim() !== "") return fromEnv(kind, name, url.trim(), Math.min(readyTimeoutMs, 15_000))
  }
  return fromLocalOrContainer(kind, readyTimeoutMs, [`environment: ${envVars[kind].join(", ")} not set`], true)
}

/**
 * Starts a server of this process's own, never an environment URL: local binaries, else testcontainers. The one
 * to stop, kill or pause in fault tests without disturbing other test files. Call `close()` on the handle.
 *
 * @category constructors
 * @since 0.1.0
 */
export const startPrivateServer = (kind: ServerKind, options: PrivateOptions = {}): Promise<ServerHandle> =>
  fromLocalOrContainer(
    kind,
    options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS,
    ["private servers are started here, not taken from environment URLs"],
    false,
    { durable: options.durable }
  )

const startFailure =
  (kind: ServerKind) =>
  (error: unknown): ServerUnavailableError | ServerStartError =>
    error instanceof ServerUnavailableError || error instanceof ServerStartError
      ? error
      : new ServerStartError({ kind, message: `${kind}: ${errorText(error)}` })

const release = (handle: ServerHandle) => Effect.promise(() => handle.close().catch(() => undefined))

/**
 * `resolveServer` as a scoped resource: the server is closed when the scope closes.
 *
 * @category constructors
 * @since 0.1.0
 */
export const acquire = (
  kind: ServerKind,
  options?: ResolveOptions
): Effect.Effect<ServerHandle, ServerUnavailableError | ServerStartError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.tryPromise({ try: () => resolveServer(kind, options), catch: startFailure(kind) }),
    release
  )

/**
 * `startPrivateServer` as a scoped resource: the server is stopped and its data deleted when the scope closes.
 *
 * @category constructors
 * @since 0.1.0
 */
export const acquirePrivate = (
  kind: ServerKind,
  options?: PrivateOptions
): Effect.Effect<ServerHandle, ServerUnavailableError | ServerStartError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.tryPromise({ try: () => startPrivateServer(kind, options), catch: startFailure(kind) }),
    release
  )

const controlEffect = (
  handle: ServerHandle,
  operation: string,
  run: () => Promise<void>
): Effect.Effect<void, ServerControlError | ServerStartError> =>
  Effect.tryPromise({
    try: run,
    catch: (error) =>
      error instanceof ServerControlError || error instanceof ServerStartError
        ? error
        : new ServerControlError({ kind: handle.kind, operation, message: `${operation}: ${errorText(error)}` })
  })

/**
 * Stops a local server (default mode `fast`) and waits for its exit.
 *
 * @category controls
 * @since 0.1.0
 */
export const stop = (
  handle: ServerHandle,
  options?: StopOptions
): Effect.Effect<void, ServerControlError | ServerStartError> =>
  controlEffect(handle, "stop", () => handle.stop(options))

/**
 * Starts a stopped local server again on the same port and data directory, and waits until it answers.
 *
 * @category controls
 * @since 0.1.0
 */
export const start = (handle: ServerHandle): Effect.Effect<void, ServerControlError | ServerStartError> =>
  controlEffect(handle, "start", handle.start)

/**
 * SIGKILLs a local server and its children, and waits until it is gone.
 *
 * @category controls
 * @since 0.1.0
 */
export const kill = (handle: ServerHandle): Effect.Effect<void, ServerControlError | ServerStartError> =>
  controlEffect(handle, "kill", handle.kill)

/**
 * SIGSTOPs a local server and its children.
 *
 * @category controls
 * @since 0.1.0
 */
export const pause = (handle: ServerHandle): Effect.Effect<void, ServerControlError | ServerStartError> =>
  controlEffect(handle, "pause", handle.pause)

/**
 * SIGCONTs a local server and its children.
 *
 * @category controls
 * @since 0.1.0
 */
export const resume = (handle: ServerHandle): Effect.Effect<void, ServerControlError | ServerStartError> =>
  controlEffect(handle, "resume", handle.resume)

/**
 * Runs `effect` with the server paused, resuming it afterwards whatever happens (failure, interruption).
 *
 * @category controls
 * @since 0.1.0
 */
export const withPaused = <A, E, R>(
  handle: ServerHandle,
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E | ServerControlError | ServerStartError, R> =>
  Effect.acquireUseRelease(
    pause(handle),
    () => effect,
    () => Effect.ignore(resume(handle))
  )
