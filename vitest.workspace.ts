// The Vitest config (vitest 5 only reads this file because the npm scripts pass `--config vitest.workspace.ts`).
// One project per package; the harness's global setup starts (or finds) the real servers once per run.
import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"

const packages = [
  "core",
  "testing",
  "redis",
  "mongodb",
  "pg",
  "prometheus",
  "server",
  "bench",
  "protections",
  "chaos",
  "packaging",
  "cluster"
]

// Absolute, because projects inherit it (`extends: true`) and would resolve a relative path against their own root.
// Vitest 5.1 runs it once, for the root project, whose provided values every project sees; should a project run it
// again, the setup reuses the servers of the first call (see GlobalSetup.ts).
const globalSetup = fileURLToPath(new URL("./packages/testing/src/GlobalSetup.ts", import.meta.url))

// Workspace packages export their compiled `dist/` to users and their TypeScript sources under the
// "@tenantpool/source" condition (see the packages' `exports` and CONTRIBUTING.md). Vite resolves with it, the test
// workers get it as `--conditions`, and NODE_OPTIONS hands it to the processes tests spawn (`node scratchpad/…`).
const sourceCondition = "@tenantpool/source"
const nodeOptions = process.env.NODE_OPTIONS ?? ""
if (!nodeOptions.includes(`--conditions=${sourceCondition}`)) {
  process.env.NODE_OPTIONS = `${nodeOptions} --conditions=${sourceCondition}`.trim()
}

export default defineConfig({
  ssr: { resolve: { conditions: [sourceCondition, "node", "development|production"] } },
  test: {
    globalSetup: [globalSetup],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    projects: packages.map((name) => ({
      extends: true,
      test: {
        name,
        root: `packages/${name}`,
        include: ["test/**/*.test.ts"],
        passWithNoTests: true
      }
    }))
  }
})
