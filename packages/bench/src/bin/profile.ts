/**
 * Reads a V8 CPU profile (`node --cpu-prof`, or `npm run bench -- --cpu-prof DIR`) and prints the functions with
 * the most self time, self time per package, and self time charged to the nearest tenantpool function on the stack
 * (time spent inside Effect or a driver on behalf of `guard.ts`, `pgSessions.ts`, …), so a missed target can be
 * traced to where the time goes.
 *
 *   node packages/bench/src/bin/profile.ts FILE.cpuprofile [--top 30]
 *
 * @since 0.1.0
 */
import { readFileSync } from "node:fs"

interface Node {
  readonly id: number
  readonly callFrame: {
    readonly functionName: string
    readonly url: string
    readonly lineNumber: number
  }
  readonly children?: ReadonlyArray<number>
}

interface Profile {
  readonly nodes: ReadonlyArray<Node>
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
}

const file = process.argv[2]
if (file === undefined) throw new Error("usage: profile.ts FILE.cpuprofile [--top N]")
const i = process.argv.indexOf("--top")
const top = i >= 0 ? Number(process.argv[i + 1]) : 30
const profile = JSON.parse(readFileSync(file, "utf8")) as Profile

const byId = new Map(profile.nodes.map((n) => [n.id, n]))
const self = new Map<number, number>()
let total = 0
profile.samples.forEach((id, k) => {
  const dt = profile.timeDeltas[k] ?? 0
  self.set(id, (self.get(id) ?? 0) + dt)
  total += dt
})

// Where a script lives, shortened: the package (node_modules/<pkg>, packages/<pkg>) and file.
const place = (url: string): { pkg: string; file: string } => {
  if (url === "") return { pkg: "(native)", file: "" }
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)\/(.*)$/.exec(url)
  if (nm !== null) return { pkg: nm[1]!, file: nm[2]! }
  const ws = /packages\/([^/]+)\/(.*)$/.exec(url)
  if (ws !== null) return { pkg: `@tenantpool/${ws[1]}`, file: ws[2]! }
  if (url.startsWith("node:")) return { pkg: "node", file: url.slice(5) }
  return { pkg: "(other)", file: url }
}

const functions = new Map<string, number>()
const packages = new Map<string, number>()
for (const [id, us] of self) {
  const n = byId.get(id)!
  const { pkg, file: f } = place(n.callFrame.url)
  const name = `${n.callFrame.functionName || "(anonymous)"}  ${pkg}${f === "" ? "" : `/${f}:${n.callFrame.lineNumber + 1}`}`
  functions.set(name, (functions.get(name) ?? 0) + us)
  packages.set(pkg, (packages.get(pkg) ?? 0) + us)
}

// Each node's nearest ancestor (itself included) in a tenantpool package: who asked for the time.
const parent = new Map<number, number>()
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
const ownerName = (id: number): string => {
  for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
    const n = byId.get(at)!
    const { pkg, file: f } = place(n.callFrame.url)
    if (pkg.startsWith("@tenantpool/"))
      return `${n.callFrame.functionName || "(anonymous)"}  ${pkg}/${f}:${n.callFrame.lineNumber + 1}`
  }
  return "(no tenantpool frame)"
}
const owners = new Map<string, number>()
for (const [id, us] of self) {
  const name = ownerName(id)
  owners.set(name, (owners.get(name) ?? 0) + us)
}

const pct = (us: number) => `${((100 * us) / total).toFixed(1).padStart(5)} %`
console.log(`${file}: ${(total / 1e6).toFixed(2)} s sampled\n\nself time by package`)
for (const [pkg, us] of [...packages].sort((a, b) => b[1] - a[1]).slice(0, 15)) console.log(`  ${pct(us)}  ${pkg}`)
console.log(`\ntop ${top} functions by self time`)
for (const [name, us] of [...functions].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${pct(us)}  ${name}`)
console.log(
  `\ntop ${top} tenantpool functions by self time charged to them (their own and that of callees outside tenantpool)`
)
for (const [name, us] of [...owners].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${pct(us)}  ${name}`)
