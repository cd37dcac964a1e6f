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
  "cluster"
]

// Absolute, because projects inherit it (`extends: true`) and would resolve a relative path against their own root.
// Vitest 5.1 runs it once, for the root project, whose provided values every project sees; should a project run it
// again, the setup reuses the servers of the first call (see GlobalSetup.ts).
const globalSetup = fileURLToPath(new URL("./packages/testing/src/GlobalSetup.ts", import.meta.url))

export default defineConfig({
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
