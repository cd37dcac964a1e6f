// Process plumbing for the locally started servers: detached spawn with output into a log file, liveness that
// treats zombies as dead, signals to a whole process group, and bounded waits. Everything here works on bare pids so
// that a process other than the one that spawned a server (a vitest worker, `services:stop`) can control it.
import { spawn } from "node:child_process"
import * as fs from "node:fs"

/** The program, arguments and identity a server runs with; stored in its record so any process can re-spawn it. */
export interface CommandSpec {
  readonly command: string
  readonly args: ReadonlyArray<string>
  readonly cwd?: string | undefined
  readonly uid?: number | undefined
  readonly gid?: number | undefined
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

const sleepSyncBuffer = new Int32Array(new SharedArrayBuffer(4))
/** Blocks the thread; only for `exit` handlers, where nothing asynchronous runs any more. */
export const sleepSync = (ms: number): void => {
  Atomics.wait(sleepSyncBuffer, 0, 0, ms)
}

/** Linux reports a not-yet-reaped child as alive to `kill(pid, 0)`; /proc tells zombies apart. */
export const isAlive = (pid: number): boolean => {
  if (!Number.isInteger(pid) || pid <= 0) return false
  try {
    process.kill(pid, 0)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EPERM") return false
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3)
    return state !== "Z" && state !== "X"
  } catch {
    return !fs.existsSync("/proc/self/stat")
  }
}

/** The command line of a live pid, to check a recorded pid still belongs to our server before signalling it. */
export const commandLine = (pid: number): string | undefined => {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ")
  } catch {
    return undefined
  }
}

/** Signals one process; a process that is already gone is not an error. */
export const signalProcess = (pid: number, signal: NodeJS.Signals): void => {
  try {
    process.kill(pid, signal)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ESRCH") throw error
  }
}

/**
 * Signals the process group led by `pid` (servers are spawned detached, so the group is the server and, for
 * PostgreSQL, all its backends), falling back to the single process when the group is gone.
 */
export const signalGroup = (pid: number, signal: NodeJS.Signals): void => {
  try {
    process.kill(-pid, signal)
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code !== "ESRCH" && code !== "EPERM") throw error
    signalProcess(pid, signal)
  }
}

const parentOf = (pid: number): number | undefined => {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1])
  } catch {
    return undefined
  }
}

/** The pids of all live descendants of `pid`, from /proc (empty where there is no /proc). */
export const descendants = (pid: number): Array<number> => {
  let entries: Array<string>
  try {
    entries = fs.readdirSync("/proc").filter((name) => /^\d+$/.test(name))
  } catch {
    return []
  }
  const children = new Map<number, Array<number>>()
  for (const entry of entries) {
    const child = Number(entry)
    const parent = parentOf(child)
    if (parent === undefined) continue
    const siblings = children.get(parent)
    if (siblings === undefined) children.set(parent, [child])
    else siblings.push(child)
  }
  const found: Array<number> = []
  const queue = [...(children.get(pid) ?? [])]
  while (queue.length > 0) {
    const next = queue.shift()!
    found.push(next)
    queue.push(...(children.get(next) ?? []))
  }
  return found
}

/**
 * Signals a server and every process under it. The group alone is not enough: PostgreSQL backends call setsid()
 * and lead their own groups. Children are listed before and after signalling the root, so a SIGKILL (after which
 * they are reparented) and a SIGSTOP (which stops the postmaster forking) both reach them all.
 */
export const signalTree = (pid: number, signal: NodeJS.Signals): void => {
  const before = descendants(pid)
  signalGroup(pid, signal)
  for (const child of new Set([...before, ...descendants(pid)])) signalProcess(child, signal)
}

/** Resolves `true` once `pid` is gone, `false` when `timeoutMs` passes first. */
export const waitForExit = async (pid: number, timeoutMs: number): Promise<boolean> => {
  const deadline = Date.now() + timeoutMs
  while (isAlive(pid)) {
    if (Date.now() >= deadline) return false
    await sleep(25)
  }
  return true
}

export const waitForExitSync = (pids: ReadonlyArray<number>, timeoutMs: number): void => {
  const deadline = Date.now() + timeoutMs
  while (pids.some(isAlive) && Date.now() < deadline) sleepSync(20)
}

/** The last `lines` lines of a log file, for startup errors. */
export const tail = (file: string, lines = 30): string => {
  try {
    const text = fs.readFileSync(file, "utf8").trimEnd()
    return text.split("\n").slice(-lines).join("\n")
  } catch {
    return "(no log output)"
  }
}

const spawnOptions = (spec: CommandSpec, fd: number) => ({
  detached: true,
  stdio: ["ignore", fd, fd] as Array<"ignore" | number>,
  ...(spec.cwd !== undefined ? { cwd: spec.cwd } : {}),
  ...(spec.uid !== undefined ? { uid: spec.uid } : {}),
  ...(spec.gid !== undefined ? { gid: spec.gid } : {})
})

/**
 * Starts `spec` in its own process group with stdout and stderr appended to `logFile`, not tied to this process's
 * lifetime (it keeps running if the spawner exits; whoever owns it stops it through the record).
 */
export const spawnDetached = (spec: CommandSpec, logFile: string): Promise<number> =>
  new Promise((resolve, reject) => {
    const fd = fs.openSync(logFile, "a")
    try {
      const child = spawn(spec.command, [...spec.args], spawnOptions(spec, fd))
      child.once("error", reject)
      child.once("spawn", () => {
        child.unref()
        resolve(child.pid!)
      })
    } finally {
      fs.closeSync(fd)
    }
  })

/** Runs `spec` to completion with output appended to `logFile` (initdb); rejects with the log tail on failure. */
export const runToCompletion = (spec: CommandSpec, logFile: string, timeoutMs: number): Promise<void> =>
  new Promise((resolve, reject) => {
    const fd = fs.openSync(logFile, "a")
    try {
      const child = spawn(spec.command, [...spec.args], { ...spawnOptions(spec, fd), detached: false })
      const timer = setTimeout(() => {
        child.kill("SIGKILL")
        reject(new Error(`${spec.command} did not finish within ${timeoutMs} ms\n${tail(logFile)}`))
      }, timeoutMs)
      child.once("error", (error) => {
        clearTimeout(timer)
        reject(error)
      })
      child.once("exit", (code, signal) => {
        clearTimeout(timer)
        if (code === 0) resolve()
        else reject(new Error(`${spec.command} exited with ${signal ?? `code ${code}`}\n${tail(logFile)}`))
      })
    } finally {
      fs.closeSync(fd)
    }
  })
