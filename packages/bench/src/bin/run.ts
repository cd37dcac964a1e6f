/**
 * `npm run bench`: runs every workload of the suite (each in a process of its own, against servers started once
 * by the test harness), shows progress, and prints one table of figure, baseline, ratio, target and verdict.
 *
 *   npm run bench [-- --quick] [--json FILE] [--markdown FILE] [--only a,b] [--seconds S] [--rounds N]
 *                 [--cpu-prof DIR] [--list]
 *
 * `--quick` runs the whole suite in well under a minute (short rounds, fewer projects): a smoke run for CI whose
 * figures are indicative only. Targets are reported, never asserted: the exit code is non-zero only when a
 * workload fails. `--cpu-prof DIR` writes a V8 CPU profile of each workload's process to DIR (read it with
 * `node packages/bench/src/bin/profile.ts FILE`).
 *
 * @since 0.1.0
 */
import { fork } from "node:child_process"
import { writeFileSync } from "node:fs"
import * as os from "node:os"
import { fileURLToPath } from "node:url"
import * as Servers from "@tenantpool/testing/Servers"
import {
  type Context,
  machine,
  markdown,
  type Reported,
  type Row,
  type ServerKind,
  table,
  verdict
} from "../internal/suite.ts"
import { workloads } from "../workloads/index.ts"

const flag = (name: string) => process.argv.includes(`--${name}`)
const option = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1] : undefined
}

type Message =
  { readonly _tag: "progress"; readonly message: string } | { readonly _tag: "rows"; readonly rows: ReadonlyArray<Row> }

// ---- a workload's own process ------------------------------------------------------------------------------------

const child = async (name: string) => {
  const send = (message: Message) => process.send!(message)
  const w = workloads.find((x) => x.name === name)!
  const ctx = JSON.parse(process.env["TENANTPOOL_BENCH_CONTEXT"]!) as Omit<Context, "progress">
  const run = await w.load()
  const rows = await run({ ...ctx, progress: (message) => send({ _tag: "progress", message }) })
  send({ _tag: "rows", rows })
  // Drivers may keep handles open (reconnect timers); the rows are out, the process is done.
  process.disconnect()
  process.exit(0)
}

// ---- the runner --------------------------------------------------------------------------------------------------

const tty = process.stderr.isTTY === true
let lastLine = 0
const progressLine = (text: string, force = false) => {
  if (tty) return void process.stderr.write(`\r\x1b[K${text.slice(0, (process.stderr.columns ?? 120) - 1)}`)
  const now = Date.now()
  if (!force && now - lastLine < 2000) return
  lastLine = now
  process.stderr.write(`${text}\n`)
}

const runOne = (
  name: string,
  ctx: Omit<Context, "progress">,
  execArgv: ReadonlyArray<string>,
  onProgress: (m: string) => void
): Promise<ReadonlyArray<Row>> =>
  new Promise((resolve, reject) => {
    let rows: ReadonlyArray<Row> | undefined
    const proc = fork(fileURLToPath(import.meta.url), [], {
      execArgv: [...process.execArgv, ...execArgv],
      env: { ...process.env, TENANTPOOL_BENCH_WORKLOAD: name, TENANTPOOL_BENCH_CONTEXT: JSON.stringify(ctx) },
      stdio: ["ignore", "inherit", "inherit", "ipc"]
    })
    proc.on("message", (m: Message) => {
      if (m._tag === "progress") onProgress(m.message)
      else rows = m.rows
    })
    proc.on("exit", (code, signal) =>
      rows !== undefined ? resolve(rows) : reject(new Error(`${name} exited with ${signal ?? code} before reporting`))
    )
  })

const usage = `npm run bench [-- --quick] [--json FILE] [--markdown FILE] [--only a,b] [--seconds S] [--rounds N]
                 [--cpu-prof DIR] [--list] [--help]`
const flags = new Set(["quick", "list", "help"])
const options = new Set(["json", "markdown", "only", "seconds", "rounds", "cpu-prof"])

// An unknown argument stops the run before it starts (a typo would otherwise cost a full run with its defaults).
const checkArguments = (args: ReadonlyArray<string>): string | undefined => {
  for (let i = 0; i < args.length; i++) {
    const name = args[i]!.startsWith("--") ? args[i]!.slice(2) : undefined
    if (name !== undefined && flags.has(name)) continue
    if (name !== undefined && options.has(name)) {
      if (args[i + 1] === undefined || args[i + 1]!.startsWith("--")) return `--${name} needs a value`
      i++
      continue
    }
    return `unknown argument ${JSON.stringify(args[i])}`
  }
  return undefined
}

const main = async () => {
  if (flag("help")) return void console.log(usage)
  const bad = checkArguments(process.argv.slice(2))
  if (bad !== undefined) {
    console.error(`${bad}\n${usage}`)
    process.exitCode = 2
    return
  }
  if (flag("list")) {
    for (const w of workloads) console.log(`${w.name.padEnd(20)} ${w.description}`)
    return
  }
  const quick = flag("quick")
  const only = option("only")?.split(",")
  const selected = workloads.filter((w) => only === undefined || only.includes(w.name))
  if (selected.length === 0) throw new Error(`no workload named ${only?.join(", ")} (see --list)`)
  const seconds = Number(option("seconds") ?? (quick ? 0.15 : 1.5))
  const rounds = Number(option("rounds") ?? (quick ? 1 : 5))
  const profileDir = option("cpu-prof")
  const started = performance.now()
  const m = machine()

  const kinds = [...new Set(selected.flatMap((w) => w.servers))] as Array<ServerKind>
  progressLine(`starting servers: ${kinds.join(", ")}`, true)
  const servers = await Promise.all(kinds.map((k) => Servers.resolveServer(k)))
  const urls: Partial<Record<ServerKind, string>> = {}
  const versions: Record<string, string> = {}
  for (const s of servers) {
    urls[s.kind] = s.url
    versions[s.kind] = `${s.version} (${s.source})`
  }

  const reported: Array<Reported> = []
  let failed = 0
  try {
    for (const [i, w] of selected.entries()) {
      const load = os.loadavg()[0]!
      const head = `[${i + 1}/${selected.length}] ${w.name}`
      progressLine(`${head} (load ${load.toFixed(2)})`, true)
      const t0 = performance.now()
      const execArgv = [
        ...(w.execArgv ?? []),
        ...(profileDir === undefined
          ? []
          : ["--cpu-prof", `--cpu-prof-dir=${profileDir}`, `--cpu-prof-name=${w.name}.cpuprofile`])
      ]
      const ctx = {
        quick,
        seconds,
        rounds,
        urls: Object.fromEntries(w.servers.map((k) => [k, urls[k]!]))
      }
      try {
        const rows = await runOne(w.name, ctx, execArgv, (message) =>
          progressLine(`${head} +${((performance.now() - t0) / 1000).toFixed(1)} s: ${message}`)
        )
        for (const row of rows) reported.push({ ...row, verdict: verdict(row), load: Math.round(load * 100) / 100 })
        progressLine(`${head}: done in ${((performance.now() - t0) / 1000).toFixed(1)} s`, true)
      } catch (error) {
        failed++
        progressLine(`${head}: FAILED: ${String(error)}`, true)
      }
      if (tty) process.stderr.write("\n")
    }
  } finally {
    await Promise.all(servers.map((s) => s.close().catch(() => undefined)))
  }

  const full: typeof m = { ...m, loadEnd: os.loadavg().map((x) => Math.round(x * 100) / 100), servers: versions }
  const elapsed = (performance.now() - started) / 1000
  const described =
    `${full.cores} × ${full.cpu}, ${full.memoryGiB} GiB, ${full.platform}, node ${full.node}; ` +
    `load ${full.loadStart.join(" / ")} at start, ${full.loadEnd!.join(" / ")} at end`
  console.log(
    `\ntenantpool bench, ${quick ? "quick" : "full"} mode (${rounds} rounds of ${seconds} s), ${elapsed.toFixed(0)} s`
  )
  console.log(described)
  console.log(
    `servers: ${Object.entries(versions)
      .map(([k, v]) => `${k} ${v}`)
      .join(", ")}\n`
  )
  console.log(table(reported))
  const missed = reported.filter((r) => r.verdict === "missed").length
  const met = reported.filter((r) => r.verdict === "met").length
  console.log(`\n${met} targets met, ${missed} missed, ${failed} workloads failed`)

  const json = option("json")
  if (json !== undefined) {
    const results = reported.map((r) => ({ ...r, machine: described }))
    writeFileSync(
      json,
      JSON.stringify(
        { mode: quick ? "quick" : "full", seconds, rounds, elapsedSeconds: elapsed, machine: full, results },
        null,
        2
      )
    )
  }
  const md = option("markdown")
  if (md !== undefined) writeFileSync(md, `${markdown(reported)}\n`)
  if (failed > 0) process.exitCode = 1
}

const childName = process.env["TENANTPOOL_BENCH_WORKLOAD"]
if (childName !== undefined && process.send !== undefined) await child(childName)
else await main()
