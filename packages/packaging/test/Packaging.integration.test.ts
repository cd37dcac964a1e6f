/**
 * The public packages as a user gets them: `npm pack` of each (its `prepack` builds `dist/`), the tarballs installed
 * with plain `npm install` into a new project in a temp directory outside the repository, that project type-checked
 * under strict settings, every public module imported by Node from `node_modules`, and the README's example run
 * against the harness's Redis.
 */
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { freshRedisDb } from "@tenantpool/testing/Isolation"
import * as TestServers from "@tenantpool/testing/TestServers"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..")
const publicPackages = ["core", "redis", "pg", "mongodb", "prometheus", "protections", "cluster"] as const
// What the README's example connects to; the test swaps in the harness's Redis.
const readmeRedisUrl = "redis://127.0.0.1:6379/0"

interface Run {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

const run = (command: string, args: ReadonlyArray<string>, options: { cwd: string; env?: NodeJS.ProcessEnv }) =>
  new Promise<Run>((resolve) => {
    execFile(
      command,
      args,
      { cwd: options.cwd, env: options.env ?? process.env, timeout: 180_000, maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : 1
        resolve({ code, stdout, stderr })
      }
    )
  })

const describeRun = (what: string, result: Run): string =>
  `${what} exited with ${result.code}\n${result.stdout.slice(-4000)}\n${result.stderr.slice(-4000)}`

// A user's environment: none of this repository's npm settings (its .npmrc puts the "@tenantpool/source" condition
// into NODE_OPTIONS, which would make Node look for sources the tarballs do not have) and none of its bin dirs.
const userEnv = (): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (key === "NODE_OPTIONS" || key === "INIT_CWD" || /^npm_/i.test(key)) continue
    env[key] = value
  }
  env.PATH = (process.env.PATH ?? "")
    .split(path.delimiter)
    .filter((dir) => dir.length > 0 && !path.resolve(dir).startsWith(root + path.sep))
    .join(path.delimiter)
  return env
}

// The README's "Using it" example, verbatim.
const readmeExample = (): string => {
  const readme = fs.readFileSync(path.join(root, "README.md"), "utf8")
  const section = readme.slice(readme.indexOf("## Using it"))
  const match = /```ts\n([\s\S]*?)```/.exec(section)
  if (match === null) throw new Error("README.md has no ```ts block under ## Using it")
  return match[1]!
}

interface Packed {
  readonly name: string
  readonly filename: string
  readonly files: ReadonlyArray<{ readonly path: string }>
}

let work = ""
let app = ""
let packed: ReadonlyArray<Packed> = []

describe("the packed packages in a project outside the repository", () => {
  beforeAll(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), "tenantpool-packaging-"))
    assert.isFalse(work.startsWith(root + path.sep), "the project must live outside the repository")
    const tarballs = path.join(work, "tarballs")
    fs.mkdirSync(tarballs)
    const pack = await run(
      "npm",
      [
        "pack",
        ...publicPackages.flatMap((name) => ["-w", `packages/${name}`]),
        "--pack-destination",
        tarballs,
        "--json"
      ],
      { cwd: root }
    )
    assert.strictEqual(pack.code, 0, describeRun("npm pack", pack))
    packed = JSON.parse(pack.stdout.slice(pack.stdout.indexOf("\n[") + 1 || 0)) as ReadonlyArray<Packed>

    app = path.join(work, "app")
    fs.mkdirSync(app)
    const dependencies = Object.fromEntries(packed.map((p) => [p.name, `file:${path.join(tarballs, p.filename)}`]))
    fs.writeFileSync(
      path.join(app, "package.json"),
      JSON.stringify(
        {
          name: "tenantpool-user",
          private: true,
          type: "module",
          dependencies: { ...dependencies, effect: "^4.1.0" },
          devDependencies: { typescript: "~5.9.3", "@types/node": "^22.19.0" }
        },
        null,
        2
      )
    )
    const install = await run("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund"], {
      cwd: app,
      env: userEnv()
    })
    assert.strictEqual(install.code, 0, describeRun("npm install", install))
  }, 240_000)

  afterAll(() => {
    if (work !== "") fs.rmSync(work, { recursive: true, force: true })
  })

  it(
    "each tarball holds compiled JavaScript, declarations and the README: no sources, no tests",
    { timeout: 30_000 },
    () => {
      assert.sameMembers(
        packed.map((p) => p.name),
        publicPackages.map((name) => `@tenantpool/${name}`)
      )
      for (const p of packed) {
        const dir = path.join(root, "packages", p.name.replace("@tenantpool/", ""))
        const files = p.files.map((f) => f.path)
        const unexpected = files.filter(
          (file) =>
            !(file === "package.json" || file === "README.md") &&
            !(file.startsWith("dist/") && (file.endsWith(".js") || file.endsWith(".d.ts"))) &&
            !(p.name === "@tenantpool/pg" && /^migrations\/(psql\/)?[\w.-]+\.sql$/.test(file)) &&
            !(p.name === "@tenantpool/prometheus" && /^grafana\/[\w.-]+\.json$/.test(file))
        )
        assert.deepStrictEqual(unexpected, [], `${p.name} ships files users do not need`)
        assert.isFalse(
          files.some((file) => /(^|\/)test\/|\.test\./.test(file)),
          `${p.name} ships tests`
        )
        for (const source of fs.readdirSync(path.join(dir, "src")).filter((f) => f.endsWith(".ts"))) {
          const module = source.slice(0, -3)
          assert.include(files, `dist/${module}.js`, `${p.name}: ${module}`)
          assert.include(files, `dist/${module}.d.ts`, `${p.name}: ${module}`)
        }
        const manifest = JSON.parse(
          fs.readFileSync(path.join(app, "node_modules", p.name, "package.json"), "utf8")
        ) as Record<string, Record<string, string> | undefined>
        assert.strictEqual(manifest.peerDependencies?.effect, "^4.1.0", `${p.name}: effect is a peer`)
        for (const [dep, range] of Object.entries({ ...manifest.dependencies, ...manifest.peerDependencies })) {
          assert.notStrictEqual(range, "*", `${p.name} depends on ${dep}@*`)
          if (dep.startsWith("@effect/") || dep === "effect" || dep.startsWith("@tenantpool/")) {
            assert.notProperty(manifest.dependencies ?? {}, dep, `${p.name}: ${dep} must be a peer dependency`)
          }
        }
      }
    }
  )

  it(
    "Node imports every public module from node_modules, and internal/ is not exported",
    { timeout: 60_000 },
    async () => {
      fs.writeFileSync(
        path.join(app, "imports.mjs"),
        [
          'import * as fs from "node:fs"',
          "const failures = []",
          "let imported = 0",
          'for (const pkg of fs.readdirSync("node_modules/@tenantpool")) {',
          "  for (const file of fs.readdirSync(`node_modules/@tenantpool/${pkg}/dist`)) {",
          '    if (!file.endsWith(".js")) continue',
          "    try { await import(`@tenantpool/${pkg}/${file.slice(0, -3)}`); imported++ }",
          "    catch (e) { failures.push(`@tenantpool/${pkg}/${file.slice(0, -3)}: ${e.code ?? ''} ${e.message}`) }",
          "  }",
          "}",
          'const internal = fs.readdirSync("node_modules/@tenantpool/core/dist/internal").find((f) => f.endsWith(".js"))',
          "let hidden",
          "try { await import(`@tenantpool/core/internal/${internal.slice(0, -3)}`); hidden = 'imported' }",
          "catch (e) { hidden = e.code }",
          "console.log(JSON.stringify({ imported, failures, hidden }))"
        ].join("\n")
      )
      const result = await run(process.execPath, ["imports.mjs"], { cwd: app, env: userEnv() })
      assert.strictEqual(result.code, 0, describeRun("node imports.mjs", result))
      const report = JSON.parse(result.stdout) as { imported: number; failures: Array<string>; hidden: string }
      assert.deepStrictEqual(report.failures, [])
      assert.isAbove(report.imported, 30)
      assert.strictEqual(report.hidden, "ERR_PACKAGE_PATH_NOT_EXPORTED")
    }
  )

  it(
    "the README's example and every public module type-check under strict settings",
    { timeout: 180_000 },
    async () => {
      fs.writeFileSync(
        path.join(app, "tsconfig.json"),
        JSON.stringify({
          compilerOptions: {
            target: "ES2023",
            lib: ["ES2023"],
            module: "NodeNext",
            moduleResolution: "NodeNext",
            types: ["node"],
            strict: true,
            exactOptionalPropertyTypes: true,
            noUncheckedIndexedAccess: true,
            verbatimModuleSyntax: true,
            skipLibCheck: false,
            noEmit: true
          },
          include: ["*.ts"]
        })
      )
      fs.writeFileSync(path.join(app, "example.ts"), readmeExample())
      // One namespace import per public module, so every declaration file we ship is checked.
      const modules = packed.flatMap((p) =>
        p.files
          .map((f) => f.path)
          .filter((file) => /^dist\/[A-Z]\w*\.d\.ts$/.test(file))
          .map((file) => `${p.name}/${file.slice("dist/".length, -".d.ts".length)}`)
      )
      fs.writeFileSync(
        path.join(app, "modules.ts"),
        modules.map((specifier, i) => `import * as M${i} from "${specifier}"`).join("\n") +
          `\nexport const modules = [${modules.map((_, i) => `M${i}`).join(", ")}]\n`
      )
      const tsc = path.join(app, "node_modules", "typescript", "bin", "tsc")
      const result = await run(process.execPath, [tsc, "-p", ".", "--pretty", "false"], { cwd: app, env: userEnv() })
      const diagnostics = result.stdout.split("\n").filter((line) => /(^|: )error TS\d+/.test(line))
      // skipLibCheck is off, so third-party declarations are checked too (ioredis's own need @types it does not
      // install); only diagnostics in our declarations or the user's files count.
      const ours = diagnostics.filter(
        (line) => !line.startsWith("node_modules/") || line.startsWith("node_modules/@tenantpool/")
      )
      assert.deepStrictEqual(ours, [], describeRun("tsc", result))
      assert.isTrue(result.code === 0 || diagnostics.length > 0, describeRun("tsc", result))
    }
  )

  it.live(
    "the README's example runs against a real Redis",
    () =>
      Effect.gen(function* () {
        const url = yield* freshRedisDb(TestServers.url("redis"))
        const example = readmeExample()
        assert.include(example, readmeRedisUrl, "the README's example names the Redis URL this test replaces")
        fs.writeFileSync(path.join(app, "example.ts"), example.replace(readmeRedisUrl, url))
        const result = yield* Effect.promise(() => run(process.execPath, ["example.ts"], { cwd: app, env: userEnv() }))
        assert.strictEqual(result.code, 0, describeRun("node example.ts", result))
        assert.strictEqual(result.stdout.trim(), "hello")
      }),
    60_000
  )
})
