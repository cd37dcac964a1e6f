// The Vitest config (vitest 5 only reads this file because the npm scripts pass `--config vitest.workspace.ts`).
// One project per package; the harness's global setup starts (or finds) the real servers once per run.
import { defineConfig } from "vitest/config"

const packages = ["core", "testing", "redis", "mongodb", "pg", "prometheus", "server", "bench"]

export default defineConfig({
  test: {
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
