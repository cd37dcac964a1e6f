// Locally started servers: how each kind is prepared (initdb), launched and reached, and the controls (stop, start,
// kill, pause, resume) that act on a server through its record, so they work from any process.
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { ServerControlError, ServerStartError } from "../ServerError.ts"
import { findFerretDb, findPostgres, findRedis } from "./binaries.ts"
import { disown, own } from "./cleanup.ts"
import { probe } from "./drivers.ts"
import type { ServerKind } from "./kinds.ts"
import { freePort, isPortFree, LOOPBACK } from "./ports.ts"
import {
  type CommandSpec,
  isAlive,
  runToCompletion,
  signalProcess,
  signalTree,
  sleep,
  spawnDetached,
  tail,
  waitForExit
} from "./process.ts"
import { readRecord, TMP_PREFIX, writeRecord, type LocalRecord } from "./record.ts"

/** PostgreSQL's shutdown modes; Redis and FerretDB map them onto their own signals (see `stopSignal`). */
export type StopMode = "smart" | "fast" | "immediate"

interface Identity {
  readonly uid?: number | undefined
  readonly gid?: number | undefined
}

interface Layout {
  readonly dir: string
  readonly dataDir: string
  readonly logFile: string
}

/** How a server is run, beyond where. */
export interface LaunchOptions {
  /**
   * Acknowledged writes survive `kill` (SIGKILL): PostgreSQL commits synchronously, Redis appends every write to its
   * AOF before answering (`appendfsync always`). Off by default: the shared servers trade durability for speed.
   */
  readonly durable?: boolean | undefined
}

export interface Launcher {
  readonly kind: ServerKind
  readonly binary: string
  readonly prepare: (layout: Layout) => Promise<void>
  readonly command: (layout: Layout, port: number, options: LaunchOptions) => CommandSpec
  readonly url: (port: number) => string
}

export const DEFAULT_READY_TIMEOUT_MS = 60_000

const errorText = (error: unknown): string => (error instanceof Error ? error.message : String(error))

// PostgreSQL refuses to run as root; as root, run initdb and postgres as the `postgres` user.
export const postgresIdentity = (): Identity => {
  if (process.getuid?.() !== 0) return {}
  try {
    const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim())
    const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim())
    return { uid, gid }
  } catch {
    throw new Error(
      "PostgreSQL refuses to run as root and there is no `postgres` user to run it as: " +
        "create one (`useradd --system postgres`) or run the tests as a regular user"
    )
  }
}

const postgresLauncher = (binaries: { readonly postgres: string; readonly initdb: string }): Launcher => ({
  kind: "postgres",
  binary: binaries.postgres,
  prepare: async ({ dir, dataDir, logFile }) => {
    if (fs.existsSync(path.join(dataDir, "PG_VERSION"))) return
    const identity = postgresIdentity()
    if (identity.uid !== undefined) fs.chownSync(dir, identity.uid, identity.gid ?? identity.uid)
    await runToCompletion(
      {
        command: binaries.initdb,
        args: ["-D", dataDir, "--auth=trust", "-U", "postgres", "--no-sync", "--no-locale", "-E", "UTF8"],
        cwd: dir,
        ...identity
      },
      logFile,
      120_000
    )
    // Unix sockets need a path under ~107 bytes; TCP is what the tests use anyway.
    const socketDir = dir.length < 90 ? dir : ""
    fs.appendFileSync(
      path.join(dataDir, "postgresql.conf"),
      [
        "",
        "# tenantpool test server",
        "listen_addresses = '127.0.0.1'",
        `unix_socket_directories = '${socketDir}'`,
        "max_connections = 200",
        "fsync = off",
        "synchronous_commit = off",
        "full_page_writes = off",
        ""
      ].join("\n")
    )
  },
  command: ({ dir, dataDir }, port, options) => ({
    command: binaries.postgres,
    args: ["-D", dataDir, "-p", String(port), ...(options.durable === true ? ["-c", "synchronous_commit=on"] : [])],
    cwd: dir,
    ...postgresIdentity()
  }),
  url: (port) => `postgres://postgres@${LOOPBACK}:${port}/postgres`
})

const redisMajor = (binary: string): number => {
  try {
    const out = execFileSync(binary, ["--version"], { encoding: "utf8" })
    return Number(/v=(\d+)/.exec(out)?.[1] ?? 0)
  } catch {
    return 0
  }
}

const redisLauncher = (binary: string): Launcher => ({
  kind: "redis",
  binary,
  prepare: async ({ dataDir }) => {
    fs.mkdirSync(dataDir, { recursive: true })
    // ACL users live in a file (`ACL SAVE`), so users a test creates survive a restart like the data does.
    fs.writeFileSync(path.join(dataDir, "users.acl"), "", { flag: "a" })
  },
  command: ({ dir, dataDir }, port, options) => ({
    command: binary,
    args: [
      "--port",
      String(port),
      "--bind",
      LOOPBACK,
      "--save",
      "",
      "--appendonly",
      ...(options.durable === true ? ["yes", "--appendfsync", "always"] : ["no"]),
      "--daemonize",
      "no",
      "--dir",
      dataDir,
      "--databases",
      "64",
      "--aclfile",
      path.join(dataDir, "users.acl"),
      // stop() (SIGTERM) writes a snapshot so a restart keeps the data; kill() and immediate stops lose it.
      ...(redisMajor(binary) >= 7 ? ["--shutdown-on-sigterm", "save", "--shutdown-on-sigint", "nosave"] : [])
    ],
    cwd: dir
  }),
  url: (port) => `redis://${LOOPBACK}:${port}`
})

const ferretDbLauncher = (binary: string): Launcher => ({
  kind: "mongodb",
  binary,
  prepare: async ({ dir, dataDir }) => {
    fs.mkdirSync(dataDir, { recursive: true })
    fs.mkdirSync(path.join(dir, "state"), { recursive: true })
  },
  command: ({ dir, dataDir }, port) => ({
    command: binary,
    args: [
      "--handler=sqlite",
      `--sqlite-url=file:${dataDir}/`,
      `--listen-addr=${LOOPBACK}:${port}`,
      "--telemetry=disable",
      "--debug-addr=-",
      `--state-dir=${path.join(dir, "state")}`,
      "--log-level=warn"
    ],
    cwd: dir
  }),
  url: (port) => `mongodb://${LOOPBACK}:${port}/`
})

/** The launcher for `kind` if its binaries are installed, and where the search looked. */
export const findLauncher = (
  kind: ServerKind
): { readonly launcher: Launcher | undefined; readonly searched: ReadonlyArray<string> } => {
  switch (kind) {
    case "postgres": {
      const found = findPostgres()
      return { launcher: found.value && postgresLauncher(found.value), searched: found.searched }
    }
    case "redis": {
      const found = findRedis()
      return { launcher: found.value === undefined ? undefined : redisLauncher(found.value), searched: found.searched }
    }
    case "mongodb": {
      const found = findFerretDb()
      return {
        launcher: found.value === undefined ? undefined : ferretDbLauncher(found.value),
        searched: found.searched
      }
    }
  }
}

const describeCommand = (record: LocalRecord): string =>
  [record.command, ...record.args.map((arg) => (arg === "" ? "''" : arg))].join(" ")

const startError = (record: LocalRecord, reason: string): ServerStartError =>
  new ServerStartError({
    kind: record.kind,
    message:
      `${record.kind} on ${record.host}:${record.port}: ${reason}\n` +
      `  command: ${describeCommand(record)}\n` +
      `  log ${record.logFile} (last lines):\n${tail(record.logFile)
        .split("\n")
        .map((line) => `    ${line}`)
        .join("\n")}`
  })

const tcpOpen = (host: string, port: number, timeoutMs: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = net.connect({ host, port })
    const done = (open: boolean) => {
      socket.destroy()
      resolve(open)
    }
    socket.setTimeout(timeoutMs, () => done(false))
    socket.once("connect", () => done(true))
    socket.once("error", () => done(false))
  })

/** Polls until the server answers a real command (PG query, Redis INFO, Mongo buildInfo); returns its version. */
const waitReady = async (record: LocalRecord, timeoutMs: number): Promise<string> => {
  const deadline = Date.now() + timeoutMs
  let last = "no attempt yet"
  for (;;) {
    if (!isAlive(record.pid)) throw startError(record, `the server process (pid ${record.pid}) exited during startup`)
    if (await tcpOpen(record.host, record.port, 1_000)) {
      try {
        return await probe(record.kind, record.url, 2_000)
      } catch (error) {
        last = errorText(error)
      }
    } else {
      last = "nothing accepts connections yet"
    }
    if (Date.now() >= deadline) throw startError(record, `not ready within ${timeoutMs} ms (last attempt: ${last})`)
    await sleep(100)
  }
}

const forceStop = async (record: LocalRecord): Promise<void> => {
  signalTree(record.pid, "SIGCONT")
  signalTree(record.pid, "SIGKILL")
  await waitForExit(record.pid, 10_000)
}

const logSize = (file: string): number => {
  try {
    return fs.statSync(file).size
  } catch {
    return 0
  }
}

const logSince = (file: string, offset: number): string => {
  try {
    return fs.readFileSync(file, "utf8").slice(offset)
  } catch {
    return ""
  }
}

export interface StartLocalOptions {
  /** The server directory; by default a fresh `tenantpool-<kind>-*` directory under `os.tmpdir()`. */
  readonly dir?: string | undefined
  /** Port to try first; a free one is used when it is taken. By default a free one. */
  readonly port?: number | undefined
  /** Keep the directory when the server is closed, and don't tie the server to this process. */
  readonly persistent?: boolean | undefined
  readonly readyTimeoutMs?: number | undefined
  readonly launch?: LaunchOptions | undefined
}

/** Prepares and starts a server, waits until it answers, writes its record; non-persistent ones are owned here. */
export const startLocal = async (launcher: Launcher, options: StartLocalOptions = {}): Promise<LocalRecord> => {
  const persistent = options.persistent ?? false
  const dir = options.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), `${TMP_PREFIX}${launcher.kind}-`))
  fs.mkdirSync(dir, { recursive: true })
  const layout: Layout = { dir, dataDir: path.join(dir, "data"), logFile: path.join(dir, "server.log") }
  if (!persistent) {
    own(dir)
    // A provisional record (no pid yet) names the owner, so a run killed during initdb is still reaped.
    writeRecord({
      ...layout,
      kind: launcher.kind,
      command: launcher.binary,
      args: [],
      host: LOOPBACK,
      port: 0,
      url: "",
      version: "",
      pid: 0,
      ownerPid: process.pid,
      persistent
    })
  }
  const readyTimeoutMs = options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS
  try {
    try {
      await launcher.prepare(layout)
    } catch (error) {
      throw new ServerStartError({
        kind: launcher.kind,
        message: `${launcher.kind}: preparing ${dir} failed: ${errorText(error)}`
      })
    }
    let collision: unknown
    for (let attempt = 0; attempt < 3; attempt++) {
      const preferred = attempt === 0 ? options.port : undefined
      const port = preferred !== undefined && (await isPortFree(preferred)) ? preferred : await freePort()
      const spec = launcher.command(layout, port, options.launch ?? {})
      const offset = logSize(layout.logFile)
      const pid = await spawnDetached(spec, layout.logFile)
      const record: LocalRecord = {
        ...spec,
        ...layout,
        kind: launcher.kind,
        host: LOOPBACK,
        port,
        url: launcher.url(port),
        version: "",
        pid,
        ownerPid: persistent ? 0 : process.pid,
        persistent
      }
      writeRecord(record)
      try {
        const version = await waitReady(record, readyTimeoutMs)
        const ready = { ...record, version }
        writeRecord(ready)
        return ready
      } catch (error) {
        await forceStop(record)
        // Another process took the port between our probe and the server's bind: try another one.
        if (!/address already in use/i.test(logSince(layout.logFile, offset))) throw error
        collision = error
      }
    }
    throw collision
  } catch (error) {
    if (!persistent) {
      disown(dir)
      fs.rmSync(dir, { recursive: true, force: true })
    }
    throw error
  }
}

const recordOf = (kind: ServerKind, dir: string, operation: string): LocalRecord => {
  const record = readRecord(dir)
  if (record === undefined) {
    throw new ServerControlError({
      kind,
      operation,
      message: `${operation}: no server record in ${dir} (the ${kind} server was closed, or never started)`
    })
  }
  return record
}

const stopSignal = (kind: ServerKind, mode: StopMode): NodeJS.Signals => {
  switch (kind) {
    case "postgres":
      return mode === "smart" ? "SIGTERM" : mode === "fast" ? "SIGINT" : "SIGQUIT"
    case "redis":
      return mode === "immediate" ? "SIGINT" : "SIGTERM"
    case "mongodb":
      return mode === "immediate" ? "SIGKILL" : "SIGTERM"
  }
}

export interface StopOptions {
  /** PostgreSQL: smart waits for clients to leave, fast (default) disconnects them, immediate skips the checkpoint. */
  readonly mode?: StopMode | undefined
  /** How long to wait for the exit before escalating to SIGQUIT/SIGKILL; default 60 s for smart, else 20 s. */
  readonly timeoutMs?: number | undefined
}

/** Stops the server (resuming it first if paused) and waits until it is gone; a stopped server is left alone. */
export const stopLocal = async (kind: ServerKind, dir: string, options: StopOptions = {}): Promise<void> => {
  const record = recordOf(kind, dir, "stop")
  if (!isAlive(record.pid)) return
  const mode = options.mode ?? "fast"
  signalTree(record.pid, "SIGCONT")
  signalProcess(record.pid, stopSignal(kind, mode))
  if (await waitForExit(record.pid, options.timeoutMs ?? (mode === "smart" ? 60_000 : 20_000))) return
  if (kind === "postgres") {
    signalProcess(record.pid, "SIGQUIT")
    if (await waitForExit(record.pid, 5_000)) return
  }
  await forceStop(record)
}

/** Starts a stopped server again: the same command, port and data directory; resolves once it answers. */
export const restartLocal = async (kind: ServerKind, dir: string, readyTimeoutMs?: number): Promise<void> => {
  const record = recordOf(kind, dir, "start")
  if (isAlive(record.pid)) {
    throw new ServerControlError({
      kind,
      operation: "start",
      message: `start: the ${kind} server is already running (pid ${record.pid}); stop() or kill() it first`
    })
  }
  const pid = await spawnDetached(record, record.logFile)
  const next: LocalRecord = { ...record, pid }
  writeRecord(next)
  try {
    await waitReady(next, readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS)
  } catch (error) {
    await forceStop(next)
    throw error
  }
}

/** SIGKILL to the server and every process under it (PostgreSQL's backends too); resolves once it is gone. */
export const killLocal = async (kind: ServerKind, dir: string): Promise<void> => {
  const record = recordOf(kind, dir, "kill")
  if (!isAlive(record.pid)) return
  signalTree(record.pid, "SIGKILL")
  if (!(await waitForExit(record.pid, 10_000))) {
    throw new ServerControlError({
      kind,
      operation: "kill",
      message: `kill: pid ${record.pid} still exists 10 s after SIGKILL`
    })
  }
}

const processState = (pid: number): string | undefined => {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3)
  } catch {
    return undefined
  }
}

/** SIGSTOP to the server and every process under it: connections stay open, nothing answers, new ones wait. */
export const pauseLocal = async (kind: ServerKind, dir: string): Promise<void> => {
  const record = recordOf(kind, dir, "pause")
  if (!isAlive(record.pid)) {
    throw new ServerControlError({ kind, operation: "pause", message: `pause: the ${kind} server is not running` })
  }
  signalTree(record.pid, "SIGSTOP")
  const deadline = Date.now() + 2_000
  while (processState(record.pid) !== "T" && processState(record.pid) !== undefined && Date.now() < deadline) {
    await sleep(5)
  }
}

export const resumeLocal = async (kind: ServerKind, dir: string): Promise<void> => {
  const record = recordOf(kind, dir, "resume")
  if (!isAlive(record.pid)) {
    throw new ServerControlError({ kind, operation: "resume", message: `resume: the ${kind} server is not running` })
  }
  signalTree(record.pid, "SIGCONT")
}

export const pidOf = (kind: ServerKind, dir: string): number => recordOf(kind, dir, "pid").pid

/** Stops the server and, unless it is persistent, deletes its directory. Closing twice is a no-op. */
export const closeLocal = async (kind: ServerKind, dir: string): Promise<void> => {
  const record = readRecord(dir)
  try {
    if (record !== undefined) await stopLocal(kind, dir, { mode: record.persistent ? "fast" : "immediate" })
  } finally {
    if (record?.persistent !== true) {
      disown(dir)
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }
}
