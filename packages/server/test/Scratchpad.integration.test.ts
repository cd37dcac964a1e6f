/**
 * Runs every usage example in scratchpad/ against the harness's servers, so they never rot.
 */
import { execFile } from "node:child_process"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { assert, describe, it } from "@effect/vitest"
import * as TestServers from "@tenantpool/testing/TestServers"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..")

const run = (file: string): Promise<{ code: number; stdout: string; stderr: string }> =>
  new Promise((resolve) => {
    execFile(
      process.execPath,
      [path.join(root, "scratchpad", file)],
      {
        cwd: root,
        timeout: 60_000,
        env: {
          ...process.env,
          TENANTPOOL_PG_URL: TestServers.url("postgres"),
          TENANTPOOL_REDIS_URL: TestServers.url("redis"),
          TENANTPOOL_MONGODB_URL: TestServers.url("mongodb")
        }
      },
      (error, stdout, stderr) =>
        resolve({ code: error === null ? 0 : ((error as { code?: number }).code ?? 1), stdout, stderr })
    )
  })

const examples: ReadonlyArray<readonly [file: string, expected: ReadonlyArray<string>]> = [
  ["readme-example.ts", ["hello"]],
  [
    "redis-quickstart.ts",
    ["value: value", "profile: { name: 'John Doe' }", "healthy: true", "Pool: 1 Available: 1", "closed: Closed"]
  ],
  [
    "tiers.ts",
    ["FREE now: 30 concurrent, 15000 ms", "rejected: invalid configuration (PRO): minPool must not exceed maxPool"]
  ],
  [
    "metrics-and-health.ts",
    [
      "my-project/redis: 1 queries, 0 errors",
      'db_queries_total{database_type="redis",tier="STARTER",status="success"} 2',
      "Healthy: true"
    ]
  ],
  ["idle-cleanup.ts", ["live projects: 5", "Closed 5 idle connections", "live projects: 0"]],
  ["pg-quickstart.ts", ["health_status: 'healthy'"]],
  [
    "mongodb-quickstart.ts",
    ["Adults: [ 'Jane (28)', 'Ola (41)' ]", "Updated: 1", "Stats: [ { _id: null, avgAge:", "Healthy: true"]
  ],
  [
    "circuit-breaker-events.ts",
    [
      "circuit-open: project redis my-project",
      "breaker: open",
      "circuit-close: project redis my-project",
      "breaker: closed"
    ]
  ]
]

describe("scratchpad examples", () => {
  for (const [file, expected] of examples) {
    it(`${file} runs and prints what it shows`, { timeout: 90_000 }, async () => {
      const result = await run(file)
      assert.strictEqual(result.code, 0, `${file} exited with ${result.code}\n${result.stderr}`)
      for (const line of expected) assert.include(result.stdout, line, `${file} did not print "${line}"`)
    })
  }
})
