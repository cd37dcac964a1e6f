// The Toxiproxy daemon behind `Toxiproxy.ts`: found (the cache, PATH) or named by TENANTPOOL_TOXIPROXY_URL,
// started detached on a free loopback port with its own directory and record (so the last-resort cleanup kills it
// if this process dies without closing it), and stopped again.
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { findToxiproxy } from "./binaries.ts"
import { disown, own } from "./cleanup.ts"
import { freePort, LOOPBACK } from "./ports.ts"
import { isAlive, signalProcess, sleep, spawnDetached, tail, waitForExit } from "./process.ts"
import { TMP_PREFIX, writeRecord } from "./record.ts"

/** The environment variable naming a running Toxiproxy's HTTP API (e.g. `http://127.0.0.1:8474`). */
export const TOXIPROXY_ENV = "TENANTPOOL_TOXIPROXY_URL"

export interface Daemon {
  readonly apiUrl: string
  readonly version: string
  readonly source: "local" | "env"
  readonly close: () => Promise<void>
}

/** Why there is no Toxiproxy; the caller turns it into a typed error. */
export class NoToxiproxy extends Error {}

const versionOf = async (apiUrl: string, timeoutMs: number): Promise<string> => {
  const response = await fetch(`${apiUrl}/version`, { signal: AbortSignal.timeout(timeoutMs) })
  if (!response.ok) throw new Error(`GET /version answered ${response.status}`)
  const text = await response.text()
  try {
    return String((JSON.parse(text) as { version?: unknown }).version ?? text.trim())
  } catch {
    return text.trim()
  }
}

const fromEnv = async (apiUrl: string): Promise<Daemon> => {
  try {
    return { apiUrl, version: await versionOf(apiUrl, 5_000), source: "env", close: async () => {} }
  } catch (error) {
    throw new NoToxiproxy(
      `${TOXIPROXY_ENV} (${apiUrl}) does not answer: ${error instanceof Error ? error.message : String(error)}`
    )
  }
}

const startLocal = async (binary: string, readyTimeoutMs: number): Promise<Daemon> => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${TMP_PREFIX}toxiproxy-`))
  const logFile = path.join(dir, "server.log")
  own(dir)
  const port = await freePort()
  const spec = { command: binary, args: ["-host", LOOPBACK, "-port", String(port)], cwd: dir }
  const base = { ...spec, kind: "toxiproxy" as const, dir, logFile, ownerPid: process.pid, persistent: false }
  writeRecord({ ...base, pid: 0 })
  const pid = await spawnDetached(spec, logFile)
  writeRecord({ ...base, pid })
  const apiUrl = `http://${LOOPBACK}:${port}`
  const close = async () => {
    signalProcess(pid, "SIGTERM")
    if (!(await waitForExit(pid, 5_000))) signalProcess(pid, "SIGKILL")
    await waitForExit(pid, 5_000)
    disown(dir)
    fs.rmSync(dir, { recursive: true, force: true })
  }
  const deadline = Date.now() + readyTimeoutMs
  for (;;) {
    try {
      return { apiUrl, version: await versionOf(apiUrl, 1_000), source: "local", close }
    } catch (error) {
      if (!isAlive(pid) || Date.now() >= deadline) {
        const log = tail(logFile)
        await close()
        throw new Error(
          `toxiproxy-server (${binary}) did not answer on ${apiUrl} within ${readyTimeoutMs} ms: ` +
            `${error instanceof Error ? error.message : String(error)}\n${log}`
        )
      }
      await sleep(50)
    }
  }
}

/** A Toxiproxy to drive: the one in TENANTPOOL_TOXIPROXY_URL, else a daemon of this process's own. */
export const acquireDaemon = async (readyTimeoutMs = 10_000): Promise<Daemon> => {
  const fromEnvironment = process.env[TOXIPROXY_ENV]
  if (fromEnvironment !== undefined && fromEnvironment.trim() !== "") {
    return fromEnv(fromEnvironment.trim().replace(/\/+$/, ""))
  }
  const found = findToxiproxy()
  if (found.value === undefined) {
    throw new NoToxiproxy(
      [
        "No Toxiproxy for the fault-injection tests. Tried:",
        `  - environment: ${TOXIPROXY_ENV} not set`,
        `  - local binaries: not found (looked in ${found.searched.join(", ")})`,
        "Get one, then run the tests again:",
        "  - npm run services:install          builds Toxiproxy (and the database servers) from the Go module proxy",
        "  - bash scripts/toxiproxy-install.sh Toxiproxy alone, into ~/.cache/tenantpool/bin (needs Go or network)",
        `  - ${TOXIPROXY_ENV}=http://127.0.0.1:8474   use a toxiproxy-server you already run`
      ].join("\n")
    )
  }
  return startLocal(found.value, readyTimeoutMs)
}
