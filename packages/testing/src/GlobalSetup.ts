/**
 * The vitest global setup (`test.globalSetup` in vitest.workspace.ts). It resolves the three servers once per run,
 * in parallel, prints one line per server, hands their descriptions to the tests (`inject`, or the helpers in
 * `TestServers`), and closes them at teardown. When a server cannot be had, the run fails with instructions.
 *
 * Vitest 5.1 runs it once, for the root project, and every project sees the root's provided values. Because inline
 * projects inherit the root config (`extends: true`) and vitest may call a global setup per project that declares
 * it, this module keeps one state on `globalThis` (each project may load its own copy of the module) and counts its
 * users: the first call starts the servers, the last teardown stops them.
 *
 * Servers are reached from test workers through their records (see `Servers.attach`): the provided `ServerInfo`
 * carries the directory of each local server, and the controls read the current pid from the record there, so a
 * server a worker restarted is still the one teardown stops.
 *
 * @since 0.1.0
 */
import type { TestProject } from "vitest/node"
import { reapStale } from "./internal/cleanup.ts"
import type { ServerKind } from "./internal/kinds.ts"
import * as Servers from "./Servers.ts"

declare module "vitest" {
  export interface ProvidedContext {
    "tenantpool.pgUrl": string
    "tenantpool.redisUrl": string
    "tenantpool.mongodbUrl": string
    "tenantpool.servers": Record<ServerKind, Servers.ServerInfo>
  }
}

interface SetupState {
  readonly servers: Promise<ReadonlyArray<Servers.ServerHandle>>
  users: number
}

const STATE = Symbol.for("@tenantpool/testing/GlobalSetup")

const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error))

const startAll = async (): Promise<ReadonlyArray<Servers.ServerHandle>> => {
  const reaped = reapStale()
  if (reaped.length > 0) console.log(`[tenantpool] removed ${reaped.length} server directories left by earlier runs`)
  const results = await Promise.allSettled(Servers.serverKinds.map((kind) => Servers.resolveServer(kind)))
  const started = results.flatMap((result) => (result.status === "fulfilled" ? [result.value] : []))
  const failures = results.flatMap((result) => (result.status === "rejected" ? [messageOf(result.reason)] : []))
  if (failures.length > 0) {
    await Promise.all(started.map((handle) => handle.close().catch(() => undefined)))
    const error = new Error(`[tenantpool] the test servers are not available\n\n${failures.join("\n\n")}\n`)
    error.name = "TestServersUnavailable"
    error.stack = `${error.name}: ${error.message}`
    throw error
  }
  for (const handle of started) {
    console.log(`[tenantpool] ${handle.kind} ${handle.version} (${handle.source}) ${handle.host}:${handle.port}`)
  }
  return started
}

/**
 * Starts (or finds) the servers on the first call, provides them to `project`, and returns the teardown.
 *
 * @category lifecycle
 * @since 0.1.0
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const global = globalThis as { [STATE]?: SetupState }
  // A failed start stays cached: later projects fail with the same message instead of trying again.
  const state = (global[STATE] ??= { servers: startAll(), users: 0 })
  const servers = await state.servers
  state.users++

  const infos = Object.fromEntries(servers.map((handle) => [handle.kind, Servers.info(handle)])) as Record<
    ServerKind,
    Servers.ServerInfo
  >
  project.provide("tenantpool.servers", infos)
  project.provide("tenantpool.pgUrl", infos.postgres.url)
  project.provide("tenantpool.redisUrl", infos.redis.url)
  project.provide("tenantpool.mongodbUrl", infos.mongodb.url)

  let released = false
  return async () => {
    if (released) return
    released = true
    state.users--
    if (state.users > 0) return
    delete global[STATE]
    const closed = await Promise.allSettled(servers.map((handle) => handle.close()))
    // Private servers of workers that died without closing them.
    reapStale()
    const failed = closed.flatMap((result) => (result.status === "rejected" ? [messageOf(result.reason)] : []))
    if (failed.length > 0) throw new Error(`[tenantpool] stopping the test servers failed:\n${failed.join("\n")}`)
  }
}
