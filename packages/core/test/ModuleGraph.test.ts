import { assert, describe, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as path from "node:path"

// Relative imports of every source file of a package, as a graph of absolute paths.
const graphOf = (dir: string): Map<string, Array<string>> => {
  const graph = new Map<string, Array<string>>()
  const walk = (d: string) => {
    for (const entry of fs.readdirSync(d, { withFileTypes: true })) {
      const file = path.join(d, entry.name)
      if (entry.isDirectory()) walk(file)
      else if (file.endsWith(".ts")) {
        const text = fs.readFileSync(file, "utf8")
        const deps = [...text.matchAll(/(?:import|export)[^"']*?from\s+"(\.{1,2}\/[^"]+)"/g)].map((m) =>
          path.resolve(path.dirname(file), m[1]!)
        )
        graph.set(file, deps)
      }
    }
  }
  walk(dir)
  return graph
}

const findCycle = (graph: Map<string, Array<string>>): Array<string> | undefined => {
  const state = new Map<string, 1 | 2>()
  const stack: Array<string> = []
  const visit = (node: string): Array<string> | undefined => {
    state.set(node, 1)
    stack.push(node)
    for (const dep of graph.get(node) ?? []) {
      if (state.get(dep) === 1) return [...stack.slice(stack.indexOf(dep)), dep]
      if (state.get(dep) === undefined) {
        const cycle = visit(dep)
        if (cycle !== undefined) return cycle
      }
    }
    stack.pop()
    state.set(node, 2)
    return undefined
  }
  for (const node of graph.keys()) {
    if (state.get(node) !== undefined) continue
    const cycle = visit(node)
    if (cycle !== undefined) return cycle
  }
  return undefined
}

const packages = path.resolve(import.meta.dirname, "../..")

describe("module graph", () => {
  for (const pkg of fs.readdirSync(packages)) {
    const src = path.join(packages, pkg, "src")
    if (!fs.existsSync(src)) continue
    it(`${pkg}/src has no import cycle (type-only imports included)`, () => {
      const cycle = findCycle(graphOf(src))
      assert.isUndefined(cycle, cycle?.map((f) => path.relative(src, f)).join(" -> "))
    })
  }
})
