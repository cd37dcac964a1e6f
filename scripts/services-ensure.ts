/**
 * Runs before `npm start` and `npm test` (their `prestart` / `pretest`): makes sure the servers and tools they need
 * are there. What is missing is installed by scripts/services-install.sh when it can be (apt-get packages need root
 * or passwordless sudo on Debian/Ubuntu; FerretDB and Toxiproxy are built from the Go module proxy without root),
 * with a progress line that says what is being installed and for how long. When it cannot be, one message says what
 * to run or which URL variables to set, and the exit code is 1. With everything present it prints nothing.
 *
 *   node scripts/services-ensure.ts start   # PostgreSQL, Redis, FerretDB, unless all three URLs are set
 *   node scripts/services-ensure.ts test    # also Toxiproxy, Prometheus and Chromium (the example server's tests)
 *
 * It looks where the test harness looks (packages/testing/src/internal/binaries.ts): PATH, /usr/lib/postgresql/<v>/bin,
 * ~/.cache/tenantpool/bin. TENANTPOOL_SYSTEM_ROOT (default `/`) moves the system directories, so a test can stand for
 * a machine without servers.
 */
import { execFileSync, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

type Mode = "start" | "test"
type Need = "postgres" | "redis" | "ferretdb" | "toxiproxy" | "prometheus" | "chromium"

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const systemRoot = process.env["TENANTPOOL_SYSTEM_ROOT"] ?? "/"
const system = (file: string): string => path.join(systemRoot, file)
const cacheBin = path.join(os.homedir(), ".cache", "tenantpool", "bin")

const label: Record<Need, string> = {
  postgres: "PostgreSQL",
  redis: "Redis",
  ferretdb: "FerretDB (a MongoDB-wire server)",
  toxiproxy: "Toxiproxy",
  prometheus: "Prometheus",
  chromium: "Chromium"
}
const serverNeeds = new Set<Need>(["postgres", "redis", "ferretdb"])
// Installed with apt-get (root or sudo); the others are built with Go, as the user.
const fromApt = new Set<Need>(["postgres", "redis", "prometheus", "chromium"])

const isExecutable = (file: string): boolean => {
  try {
    fs.accessSync(file, fs.constants.X_OK)
    return fs.statSync(file).isFile()
  } catch {
    return false
  }
}
const pathDirs = (): Array<string> => (process.env["PATH"] ?? "").split(path.delimiter).filter((d) => d.length > 0)
const onPath = (name: string, ...extra: Array<string>): boolean =>
  [...extra, ...pathDirs().map((dir) => path.join(dir, name))].some(isExecutable)

const present: Record<Need, () => boolean> = {
  postgres: () => {
    const debian = (() => {
      try {
        return fs.readdirSync(system("usr/lib/postgresql")).map((v) => system(`usr/lib/postgresql/${v}/bin`))
      } catch {
        return []
      }
    })()
    return [...pathDirs(), ...debian, system("usr/local/pgsql/bin")].some(
      (dir) => isExecutable(path.join(dir, "postgres")) && isExecutable(path.join(dir, "initdb"))
    )
  },
  redis: () => onPath("redis-server"),
  ferretdb: () => onPath("ferretdb", path.join(cacheBin, "ferretdb")),
  toxiproxy: () => onPath("toxiproxy-server", path.join(cacheBin, "toxiproxy-server")),
  prometheus: () => onPath("prometheus"),
  // The status page test launches this path.
  chromium: () => isExecutable(system("usr/bin/chromium"))
}

const env = (...names: Array<string>): boolean => names.some((name) => (process.env[name] ?? "").length > 0)
const urls = {
  postgres: env("TENANTPOOL_PG_URL", "DATABASE_URL"),
  redis: env("TENANTPOOL_REDIS_URL", "REDIS_URL"),
  ferretdb: env("TENANTPOOL_MONGODB_URL", "MONGODB_URL"),
  toxiproxy: env("TENANTPOOL_TOXIPROXY_URL")
}
// The harness falls back to testcontainers when a Docker engine answers; a socket is a good enough sign here.
// Installing is still preferred: only local servers can be stopped, killed and paused by the fault tests.
const docker = (): boolean => env("DOCKER_HOST") || fs.existsSync(system("var/run/docker.sock"))

const needs = (mode: Mode): Array<Need> => {
  if (mode === "start") {
    // The demo takes all three URLs from the environment, or starts all three servers itself.
    if (urls.postgres && urls.redis && urls.ferretdb) return []
    return (["postgres", "redis", "ferretdb"] as const).filter((need) => !present[need]())
  }
  const servers = (["postgres", "redis", "ferretdb"] as const).filter((need) => !urls[need] && !present[need]())
  const tools = (["toxiproxy", "prometheus", "chromium"] as const).filter(
    (need) => !(need === "toxiproxy" && urls.toxiproxy) && !present[need]()
  )
  return [...servers, ...tools]
}

const succeeds = (command: string, args: Array<string>): string | undefined => {
  try {
    return execFileSync(command, args, { stdio: ["ignore", "pipe", "ignore"], timeout: 10_000 })
      .toString()
      .trim()
  } catch {
    return undefined
  }
}

// Why apt-get cannot be run from here, or undefined when it can.
const aptBlocked = (): string | undefined => {
  if (!onPath("apt-get")) return "there is no apt-get (Debian or Ubuntu) on this machine"
  if (succeeds("id", ["-u"]) === "0") return undefined
  if (succeeds("sudo", ["-n", "true"]) !== undefined) return undefined
  return "this user is not root and has no passwordless sudo"
}

const list = (items: ReadonlyArray<string>): string =>
  items.length <= 1 ? (items[0] ?? "") : `${items.slice(0, -1).join(", ")} and ${items[items.length - 1]}`

const duration = (ms: number): string => {
  const s = Math.round(ms / 1000)
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`
}

const urlVariable: Partial<Record<Need, string>> = {
  postgres: "TENANTPOOL_PG_URL",
  redis: "TENANTPOOL_REDIS_URL",
  ferretdb: "TENANTPOOL_MONGODB_URL",
  toxiproxy: "TENANTPOOL_TOXIPROXY_URL"
}

const cannotInstall = (mode: Mode, missing: ReadonlyArray<Need>, why: string): number => {
  const command = mode === "test" ? "npm run services:install -- --with-ui" : "npm run services:install"
  const variables =
    mode === "start"
      ? ["TENANTPOOL_PG_URL", "TENANTPOOL_REDIS_URL", "TENANTPOOL_MONGODB_URL"]
      : missing.flatMap((need) => urlVariable[need] ?? [])
  const lines = [
    `[tenantpool] \`npm ${mode}\` needs ${list(missing.map((need) => label[need]))}, not installed here, and they ` +
      `cannot be installed from here: ${why}.`,
    `  Install them as root or with sudo on Debian or Ubuntu: ${command}`
  ]
  if (variables.length > 0) {
    const withDocker =
      mode === "test" && missing.some((need) => need !== "toxiproxy" && urlVariable[need] !== undefined)
    lines.push(`  Or set ${list(variables)} to running servers${withDocker ? " (or start a Docker engine)" : ""}.`)
  }
  const ui = missing.filter((need) => need === "prometheus" || need === "chromium")
  if (ui.length > 0)
    lines.push(
      `  (${list(ui.map((need) => label[need]))}, for the example server's tests, come only from the install.)`
    )
  console.error(lines.join("\n"))
  return 1
}

// Runs services-install.sh with its output in a log file, and one progress line on the terminal.
const install = (missing: ReadonlyArray<Need>, args: Array<string>): Promise<number> => {
  const logDir = path.join(repoRoot, ".tenantpool")
  fs.mkdirSync(logDir, { recursive: true })
  const logFile = path.join(logDir, "services-install.log")
  const log = fs.openSync(logFile, "w")
  const what = list(missing.map((need) => label[need]))
  const started = Date.now()
  const tty = process.stdout.isTTY === true
  const relativeLog = path.relative(process.cwd(), logFile)
  let step = "starting"
  let lastPrinted = 0
  const progress = (force: boolean) => {
    const line = `[tenantpool] installing ${what}: ${duration(Date.now() - started)}, ${step}`
    if (tty) process.stdout.write(`\r\x1b[2K${line.slice(0, (process.stdout.columns ?? 120) - 1)}`)
    else if (force || Date.now() - lastPrinted >= 30_000) {
      console.log(line)
      lastPrinted = Date.now()
    }
  }
  console.log(
    `[tenantpool] installing ${what} with scripts/services-install.sh (the first time takes a few minutes; ` +
      `log: ${relativeLog})`
  )
  return new Promise((resolve) => {
    const child = spawn("bash", [path.join(repoRoot, "scripts/services-install.sh"), ...args], {
      cwd: repoRoot,
      stdio: ["ignore", "pipe", "pipe"]
    })
    const onData = (chunk: Buffer) => {
      fs.writeSync(log, chunk)
      for (const line of chunk.toString().split("\n")) {
        const m = /^\[(?:services-install|toxiproxy-install|go-toolchain)\] (.*)$/.exec(line.trim())
        if (m !== null) {
          step = m[1]!.length > 80 ? `${m[1]!.slice(0, 77)}...` : m[1]!
          progress(true)
        }
      }
    }
    child.stdout.on("data", onData)
    child.stderr.on("data", onData)
    const timer = setInterval(() => progress(false), 1_000)
    child.on("close", (code) => {
      clearInterval(timer)
      fs.closeSync(log)
      if (tty) process.stdout.write("\r\x1b[2K")
      if (code === 0) {
        console.log(`[tenantpool] installed ${what} in ${duration(Date.now() - started)}`)
        resolve(0)
        return
      }
      const tail = fs.readFileSync(logFile, "utf8").trimEnd().split("\n").slice(-15).join("\n")
      console.error(
        `[tenantpool] installing ${what} failed after ${duration(Date.now() - started)} (exit ${code}); the end of ` +
          `${relativeLog}:\n${tail}`
      )
      resolve(1)
    })
    child.on("error", (error) => {
      clearInterval(timer)
      console.error(`[tenantpool] could not run scripts/services-install.sh: ${error.message}`)
      resolve(1)
    })
  })
}

const main = async (mode: Mode): Promise<number> => {
  const missing = needs(mode)
  if (missing.length === 0) return 0
  const blocked = missing.some((need) => fromApt.has(need)) ? aptBlocked() : undefined
  if (blocked !== undefined) {
    // The test harness can run the database servers in containers instead (the fault tests then fail, saying so).
    const rest = mode === "test" && docker() ? missing.filter((need) => !serverNeeds.has(need)) : missing
    return rest.length === 0 ? 0 : cannotInstall(mode, rest, blocked)
  }
  const args = [...(missing.some((n) => n === "prometheus" || n === "chromium") ? ["--with-ui"] : [])]
  if (mode === "start") args.push("--without-toxiproxy")
  const code = await install(missing, args)
  if (code !== 0) return code
  const still = needs(mode)
  if (still.length > 0) {
    console.error(
      `[tenantpool] scripts/services-install.sh finished, but ${list(still.map((need) => label[need]))} still ` +
        "cannot be found where the test harness looks (see packages/testing/README.md)."
    )
    return 1
  }
  return 0
}

const mode = process.argv[2]
if (mode !== "start" && mode !== "test") {
  console.error("usage: node scripts/services-ensure.ts start | test")
  process.exitCode = 2
} else {
  try {
    process.exitCode = await main(mode)
  } catch (error) {
    console.error(`[tenantpool] checking the servers failed: ${error instanceof Error ? error.message : String(error)}`)
    process.exitCode = 1
  }
}
