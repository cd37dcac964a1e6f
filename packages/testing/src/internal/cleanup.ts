// Last-resort cleanup. The normal path closes servers through scopes and the global teardown; this covers the
// abnormal ones: an `exit` without teardown (vitest exits on SIGINT/SIGTERM), a signal to a process that owns
// private servers, and directories left by a run that was SIGKILLed (reaped at the next run's start).
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { commandLine, isAlive, signalProcess, signalTree, waitForExitSync } from "./process.ts"
import { readRecord, TMP_PREFIX, type ProcessRecord } from "./record.ts"

interface CleanupState {
  readonly owned: Set<string>
  installed: boolean
}

// On globalThis: vitest loads the global setup once per project, each copy must share one registry.
const state: CleanupState = ((globalThis as any)[Symbol.for("@tenantpool/testing/cleanup")] ??= {
  owned: new Set<string>(),
  installed: false
})

const belongsTo = (record: ProcessRecord): boolean => {
  const cmdline = commandLine(record.pid)
  return cmdline === undefined ? isAlive(record.pid) : cmdline.includes(path.basename(record.command))
}

/** Stops servers synchronously: PostgreSQL by immediate shutdown (which frees its shared memory), the rest by SIGKILL. */
const killSync = (records: ReadonlyArray<ProcessRecord>): void => {
  const live = records.filter((record) => isAlive(record.pid) && belongsTo(record))
  for (const record of live) {
    signalTree(record.pid, "SIGCONT")
    if (record.kind === "postgres") signalProcess(record.pid, "SIGQUIT")
    else signalTree(record.pid, "SIGKILL")
  }
  waitForExitSync(
    live.map((record) => record.pid),
    3_000
  )
  for (const record of live) if (isAlive(record.pid)) signalTree(record.pid, "SIGKILL")
}

const removeDir = (dir: string): void => {
  try {
    fs.rmSync(dir, { recursive: true, force: true })
  } catch {
    // best effort on the way out
  }
}

const cleanupOwnedSync = (): void => {
  const dirs = [...state.owned]
  state.owned.clear()
  const records = dirs.flatMap((dir) => readRecord<ProcessRecord>(dir) ?? [])
  killSync(records)
  for (const dir of dirs) {
    if (readRecord<ProcessRecord>(dir)?.persistent !== true) removeDir(dir)
  }
}

const onSignal = (signal: NodeJS.Signals): void => {
  cleanupOwnedSync()
  // A listener disables the default action. Where another listener exits the process (vitest's reporter does, 1 ms
  // later) this timer never fires; elsewhere it restores the default: die by the signal.
  setTimeout(() => {
    for (const name of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.off(name, onSignal)
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal)
  }, 100)
}

const install = (): void => {
  if (state.installed) return
  state.installed = true
  process.on("exit", cleanupOwnedSync)
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(signal, onSignal)
}

/** Registers a server (or Toxiproxy) directory to be killed and removed if this process exits without closing it. */
export const own = (dir: string): void => {
  install()
  state.owned.add(dir)
}

export const disown = (dir: string): void => {
  state.owned.delete(dir)
}

/**
 * Removes what earlier runs left behind in `os.tmpdir()`: server directories whose owner process is gone (their
 * server is killed first, if the recorded pid still runs that binary), and half-created ones older than an hour.
 */
export const reapStale = (): ReadonlyArray<string> => {
  const root = os.tmpdir()
  let entries: Array<string>
  try {
    entries = fs.readdirSync(root).filter((name) => name.startsWith(TMP_PREFIX))
  } catch {
    return []
  }
  const reaped: Array<string> = []
  for (const name of entries) {
    const dir = path.join(root, name)
    const record = readRecord<ProcessRecord>(dir)
    if (record === undefined) {
      try {
        if (Date.now() - fs.statSync(dir).mtimeMs < 3_600_000) continue
      } catch {
        continue
      }
    } else {
      if (record.persistent || record.ownerPid === 0 || isAlive(record.ownerPid)) continue
      killSync([record])
    }
    removeDir(dir)
    reaped.push(dir)
  }
  return reaped
}
