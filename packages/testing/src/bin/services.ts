/**
 * `npm run services:start` / `npm run services:stop` (and `npx node packages/testing/src/bin/services.ts status`):
 * PostgreSQL, Redis and FerretDB for local development, running in the background with their data under
 * `.tenantpool/` in the repository. `start` prefers the ports 55432, 56379 and 57017 (free ones when taken), writes
 * the URLs to `.tenantpool/services.env` (source it and `npm test` uses these servers instead of starting its own)
 * and `.tenantpool/services.json`, and only prints them when the servers are already up. `stop` stops them and keeps
 * the data; `rm -rf .tenantpool` wipes it.
 *
 * @since 0.1.0
 */
import { execFileSync } from "node:child_process"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { probe } from "../internal/drivers.ts"
import { envVars, serverKinds, type ServerKind } from "../internal/kinds.ts"
import { closeLocal, findLauncher, postgresIdentity, startLocal } from "../internal/local.ts"
import { isAlive } from "../internal/process.ts"
import { readRecord, type LocalRecord } from "../internal/record.ts"

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../..")
const stateDir = path.join(repoRoot, ".tenantpool")
const envFile = path.join(stateDir, "services.env")
const jsonFile = path.join(stateDir, "services.json")

const preferredPort: Record<ServerKind, number> = { postgres: 55432, redis: 56379, mongodb: 57017 }

const relative = (file: string): string => {
  const rel = path.relative(process.cwd(), file)
  return rel.startsWith("..") ? file : rel
}

// As root, PostgreSQL runs as `postgres`, which must be able to reach its data directory. A repository under a
// private home directory (/root/...) is not reachable; the data then lives under the temp directory instead.
const serverDir = (kind: ServerKind): string => {
  const inRepo = path.join(stateDir, kind)
  if (kind !== "postgres") return inRepo
  const identity = postgresIdentity()
  if (identity.uid === undefined) return inRepo
  try {
    execFileSync("/bin/sh", ["-c", 'cd "$1"', "sh", stateDir], { uid: identity.uid, gid: identity.gid ?? identity.uid })
    return inRepo
  } catch {
    const hash = createHash("sha256").update(repoRoot).digest("hex").slice(0, 12)
    return path.join(os.tmpdir(), `tenantpool.services-${hash}`, kind)
  }
}

interface ServiceEntry {
  readonly kind: ServerKind
  readonly url: string
  readonly version: string
  readonly host: string
  readonly port: number
  readonly pid: number
  readonly dir: string
  readonly logFile: string
}

const entryOf = (record: LocalRecord, version: string): ServiceEntry => ({
  kind: record.kind,
  url: record.url,
  version,
  host: record.host,
  port: record.port,
  pid: record.pid,
  dir: record.dir,
  logFile: record.logFile
})

const readEntries = (): ReadonlyArray<ServiceEntry> => {
  try {
    return (JSON.parse(fs.readFileSync(jsonFile, "utf8")) as { readonly servers: ReadonlyArray<ServiceEntry> }).servers
  } catch {
    return []
  }
}

/** A server started earlier that still runs and answers: its record and current version. */
const running = async (dir: string): Promise<{ record: LocalRecord; version: string } | undefined> => {
  const record = readRecord(dir)
  if (record === undefined || !isAlive(record.pid)) return undefined
  try {
    return { record, version: await probe(record.kind, record.url, 3_000) }
  } catch {
    return undefined
  }
}

const writeState = (entries: ReadonlyArray<ServiceEntry>): void => {
  fs.mkdirSync(stateDir, { recursive: true })
  const lines = entries.map((entry) => `${envVars[entry.kind][0]}=${entry.url}`)
  fs.writeFileSync(envFile, `${lines.join("\n")}\n`)
  fs.writeFileSync(jsonFile, `${JSON.stringify({ servers: entries }, null, 2)}\n`)
}

const printEntries = (entries: ReadonlyArray<ServiceEntry>): void => {
  for (const entry of entries) console.log(`${envVars[entry.kind][0]}=${entry.url}`)
  console.log(`\nwritten to ${relative(envFile)}; to run the tests against these servers:`)
  console.log(`  set -a; . ${relative(envFile)}; set +a; npm test`)
  console.log("stop them with `npm run services:stop`")
}

const start = async (): Promise<number> => {
  const missing = serverKinds.filter((kind) => findLauncher(kind).launcher === undefined)
  if (missing.length > 0) {
    console.error(
      `[tenantpool] not installed: ${missing.map((kind) => `${kind} (looked in ${findLauncher(kind).searched.join(", ")})`).join("; ")}\n` +
        "Run `npm run services:install` first (Debian/Ubuntu, root or sudo)."
    )
    return 1
  }
  fs.mkdirSync(stateDir, { recursive: true })
  const results = await Promise.allSettled(
    serverKinds.map(async (kind): Promise<ServiceEntry> => {
      const dir = serverDir(kind)
      const up = await running(dir)
      if (up !== undefined) {
        console.log(`[tenantpool] ${kind} ${up.version} already running on ${up.record.host}:${up.record.port}`)
        return entryOf(up.record, up.version)
      }
      const previous = readRecord(dir)
      const record = await startLocal(findLauncher(kind).launcher!, {
        dir,
        port: previous?.port ?? preferredPort[kind],
        persistent: true
      })
      console.log(`[tenantpool] ${kind} ${record.version} started on ${record.host}:${record.port} (${relative(dir)})`)
      return entryOf(record, record.version)
    })
  )
  const entries = results.flatMap((result) => (result.status === "fulfilled" ? [result.value] : []))
  writeState(entries)
  const failures = results.flatMap((result) => (result.status === "rejected" ? [result.reason] : []))
  for (const failure of failures) console.error(failure instanceof Error ? failure.message : String(failure))
  console.log("")
  printEntries(entries)
  return failures.length > 0 ? 1 : 0
}

const stop = async (): Promise<number> => {
  const dirs = new Set([...serverKinds.map(serverDir), ...readEntries().map((entry) => entry.dir)])
  let failed = 0
  for (const dir of dirs) {
    const record = readRecord(dir)
    if (record === undefined) continue
    if (!isAlive(record.pid)) continue
    try {
      await closeLocal(record.kind, dir)
      console.log(`[tenantpool] ${record.kind} stopped (data kept in ${relative(dir)})`)
    } catch (error) {
      failed++
      console.error(`[tenantpool] stopping ${record.kind} failed: ${error instanceof Error ? error.message : error}`)
    }
  }
  if (failed === 0) {
    fs.rmSync(envFile, { force: true })
    fs.rmSync(jsonFile, { force: true })
  }
  if (dirs.size > 0 && failed === 0)
    console.log("[tenantpool] services stopped; `rm -rf .tenantpool` deletes their data")
  return failed > 0 ? 1 : 0
}

const status = async (): Promise<number> => {
  let down = 0
  for (const kind of serverKinds) {
    const up = await running(serverDir(kind))
    if (up === undefined) {
      down++
      console.log(`[tenantpool] ${kind}: not running`)
    } else {
      console.log(`[tenantpool] ${kind} ${up.version} on ${up.record.host}:${up.record.port} (pid ${up.record.pid})`)
    }
  }
  return down > 0 ? 1 : 0
}

const commands: Record<string, () => Promise<number>> = { start, stop, status }
const command = commands[process.argv[2] ?? ""]
if (command === undefined) {
  console.error("usage: npx node packages/testing/src/bin/services.ts start | stop | status")
  process.exitCode = 2
} else {
  process.exitCode = await command()
}
