/**
 * `npm start` and `npm test` on a machine without the servers: their pre-scripts (scripts/services-ensure.ts)
 * install what is missing when they can, with a progress line, and otherwise print one message that says what to run
 * or which URL variables to set, with exit code 1 and no stack trace.
 *
 * The machine is simulated: a PATH holding only stand-ins (`id`, `apt-get`, `node`, `sh`, `bash`), an empty HOME,
 * and TENANTPOOL_SYSTEM_ROOT pointing at an empty directory instead of `/`. The real installation is what .ci/run
 * does on a fresh machine (as root, through `npm test`'s pretest).
 */
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { afterEach, assert, describe, it } from "@effect/vitest"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..")
const ensureScript = path.join(root, "scripts", "services-ensure.ts")

interface Machine {
  readonly dir: string
  readonly bin: string
  readonly home: string
  readonly systemRoot: string
  readonly env: NodeJS.ProcessEnv
}

const machines: Array<string> = []
afterEach(() => {
  for (const dir of machines.splice(0)) fs.rmSync(dir, { recursive: true, force: true })
})

const executable = (file: string, text: string): void => {
  fs.mkdirSync(path.dirname(file), { recursive: true })
  fs.writeFileSync(file, text, { mode: 0o755 })
}

// A machine with none of the servers. `uid` is what `id -u` answers; `apt` whether apt-get exists.
const machine = (options: { readonly uid: number; readonly apt: boolean }): Machine => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tenantpool-fresh-machine-"))
  machines.push(dir)
  const bin = path.join(dir, "bin")
  const home = path.join(dir, "home")
  const systemRoot = path.join(dir, "root")
  fs.mkdirSync(home, { recursive: true })
  fs.mkdirSync(systemRoot, { recursive: true })
  executable(path.join(bin, "id"), `#!/bin/sh\necho ${options.uid}\n`)
  if (options.apt) executable(path.join(bin, "apt-get"), "#!/bin/sh\nexit 100\n")
  fs.symlinkSync(process.execPath, path.join(bin, "node"))
  fs.symlinkSync("/bin/sh", path.join(bin, "sh"))
  fs.symlinkSync("/bin/bash", path.join(bin, "bash"))
  const env: NodeJS.ProcessEnv = {
    PATH: bin,
    HOME: home,
    TENANTPOOL_SYSTEM_ROOT: systemRoot,
    npm_config_update_notifier: "false"
  }
  return { dir, bin, home, systemRoot, env }
}

interface Run {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

const run = (command: string, args: ReadonlyArray<string>, cwd: string, env: NodeJS.ProcessEnv) =>
  new Promise<Run>((resolve) => {
    execFile(command, args, { cwd, env, timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : 1, stdout, stderr })
    })
  })

const ensure = (m: Machine, mode: "start" | "test", script = ensureScript, extraEnv: NodeJS.ProcessEnv = {}) =>
  run(process.execPath, [script, mode], path.dirname(path.dirname(script)), { ...m.env, ...extraEnv })

const npmCli = (): string => {
  const fromNpm = process.env["npm_execpath"]
  if (fromNpm !== undefined && fromNpm.endsWith(".js")) return fromNpm
  for (const dir of (process.env["PATH"] ?? "").split(path.delimiter)) {
    const candidate = path.join(dir, "npm")
    if (fs.existsSync(candidate)) return fs.realpathSync(candidate)
  }
  throw new Error("npm is not on PATH")
}

const stackTrace = /^\s+at .+(:\d+:\d+\)?|\(node:)/m

describe("on a machine without the servers, where they cannot be installed", () => {
  it("`npm test`'s check names what is missing and what to run, in one message, and exits 1", async () => {
    const m = machine({ uid: 1000, apt: true })
    const result = await ensure(m, "test")
    assert.strictEqual(result.code, 1)
    assert.strictEqual(result.stdout, "")
    assert.deepStrictEqual(result.stderr.trimEnd().split("\n"), [
      "[tenantpool] `npm test` needs PostgreSQL, Redis, FerretDB (a MongoDB-wire server), Toxiproxy, Prometheus and " +
        "Chromium, not installed here, and they cannot be installed from here: this user is not root and has no " +
        "passwordless sudo.",
      "  Install them as root or with sudo on Debian or Ubuntu: npm run services:install -- --with-ui",
      "  Or set TENANTPOOL_PG_URL, TENANTPOOL_REDIS_URL, TENANTPOOL_MONGODB_URL and TENANTPOOL_TOXIPROXY_URL to " +
        "running servers (or start a Docker engine).",
      "  (Prometheus and Chromium, for the example server's tests, come only from the install.)"
    ])
  })

  it("`npm start`'s check says the same for the three servers, and that root without apt-get cannot install", async () => {
    const m = machine({ uid: 0, apt: false })
    const result = await ensure(m, "start")
    assert.strictEqual(result.code, 1)
    assert.strictEqual(result.stdout, "")
    assert.deepStrictEqual(result.stderr.trimEnd().split("\n"), [
      "[tenantpool] `npm start` needs PostgreSQL, Redis and FerretDB (a MongoDB-wire server), not installed here, " +
        "and they cannot be installed from here: there is no apt-get (Debian or Ubuntu) on this machine.",
      "  Install them as root or with sudo on Debian or Ubuntu: npm run services:install",
      "  Or set TENANTPOOL_PG_URL, TENANTPOOL_REDIS_URL and TENANTPOOL_MONGODB_URL to running servers."
    ])
  })

  it("`npm start` and `npm test` run the check first: the message, exit 1, no stack trace, nothing started", async () => {
    const m = machine({ uid: 1000, apt: true })
    for (const args of [["start"], ["run", "pretest"]]) {
      const result = await run(process.execPath, [npmCli(), ...args], root, m.env)
      assert.strictEqual(result.code, 1, `npm ${args.join(" ")}\n${result.stdout}\n${result.stderr}`)
      const output = result.stdout + result.stderr
      assert.strictEqual(output.match(/\[tenantpool\]/g)?.length, 1, output)
      assert.include(output, "cannot be installed from here: this user is not root and has no passwordless sudo")
      assert.notMatch(output, stackTrace)
      assert.notInclude(output, "[tenantpool] postgres") // the demo did not go on to start servers
    }
  })
})

describe("with a Docker engine but no way to install", () => {
  it("`npm test`'s check leaves the servers to the harness's containers and asks only for the tools", async () => {
    const m = machine({ uid: 1000, apt: true })
    executable(path.join(m.systemRoot, "var/run/docker.sock"), "")
    const result = await ensure(m, "test")
    assert.strictEqual(result.code, 1)
    assert.include(
      result.stderr,
      "`npm test` needs Toxiproxy, Prometheus and Chromium, not installed here, and they cannot be installed from here"
    )
    assert.include(result.stderr, "Or set TENANTPOOL_TOXIPROXY_URL to running servers.")
    for (const name of ["toxiproxy-server", "prometheus"]) executable(path.join(m.bin, name), "")
    executable(path.join(m.systemRoot, "usr/bin/chromium"), "")
    assert.deepStrictEqual(await ensure(m, "test"), { code: 0, stdout: "", stderr: "" })
  })
})

describe("with everything there", () => {
  it("says nothing and exits 0: URLs for the three servers (start), or the binaries and tools (test)", async () => {
    const m = machine({ uid: 1000, apt: false })
    const urls = {
      TENANTPOOL_PG_URL: "postgres://127.0.0.1:1/postgres",
      TENANTPOOL_REDIS_URL: "redis://127.0.0.1:2",
      TENANTPOOL_MONGODB_URL: "mongodb://127.0.0.1:3"
    }
    assert.deepStrictEqual(await ensure(m, "start", ensureScript, urls), { code: 0, stdout: "", stderr: "" })
    for (const name of ["postgres", "initdb"])
      executable(path.join(m.systemRoot, "usr/lib/postgresql/15/bin", name), "")
    for (const name of ["redis-server", "prometheus"]) executable(path.join(m.bin, name), "")
    for (const name of ["ferretdb", "toxiproxy-server"])
      executable(path.join(m.home, ".cache/tenantpool/bin", name), "")
    executable(path.join(m.systemRoot, "usr/bin/chromium"), "")
    assert.deepStrictEqual(await ensure(m, "test"), { code: 0, stdout: "", stderr: "" })
  })
})

describe("where the servers can be installed", () => {
  // A copy of the check next to a stand-in for services-install.sh, which records its arguments, reports its steps
  // the way the real one does, and puts stand-in binaries where the check looks (or fails, with FAIL set).
  const withStandIn = (m: Machine): string => {
    const scripts = path.join(m.dir, "repo", "scripts")
    fs.mkdirSync(scripts, { recursive: true })
    fs.copyFileSync(ensureScript, path.join(scripts, "services-ensure.ts"))
    executable(
      path.join(scripts, "services-install.sh"),
      [
        "#!/usr/bin/env bash",
        'PATH="$PATH:/usr/bin:/bin"', // the simulated PATH has no mkdir or chmod
        'echo "$*" > "$HOME/installer-args"',
        'echo "[services-install] apt-get install postgresql-15 postgresql-contrib redis-server"',
        'if [ -n "${FAIL:-}" ]; then echo "E: Unable to locate package postgresql-15" >&2; exit 100; fi',
        `mkdir -p "${m.systemRoot}/usr/lib/postgresql/15/bin" "$HOME/.cache/tenantpool/bin" "${m.systemRoot}/usr/bin"`,
        `for f in "${m.systemRoot}/usr/lib/postgresql/15/bin/postgres" "${m.systemRoot}/usr/lib/postgresql/15/bin/initdb" ` +
          `"${m.bin}/redis-server" "${m.bin}/prometheus" "${m.systemRoot}/usr/bin/chromium" ` +
          '"$HOME/.cache/tenantpool/bin/ferretdb" "$HOME/.cache/tenantpool/bin/toxiproxy-server"; do',
        '  printf "#!/bin/sh\\n" > "$f"; chmod +x "$f"',
        "done",
        'echo "[services-install] building FerretDB v1.24.2 with go1.24.13"',
        'echo "[toxiproxy-install] building Toxiproxy v2.12.0 with go1.24.13"'
      ].join("\n") + "\n"
    )
    return path.join(scripts, "services-ensure.ts")
  }

  it("installs them with services-install.sh, a line per step saying what and how long, and exits 0", async () => {
    const m = machine({ uid: 0, apt: true })
    const result = await ensure(m, "test", withStandIn(m))
    assert.strictEqual(result.code, 0, result.stderr)
    assert.strictEqual(result.stderr, "")
    const lines = result.stdout.trimEnd().split("\n")
    const what = "PostgreSQL, Redis, FerretDB (a MongoDB-wire server), Toxiproxy, Prometheus and Chromium"
    assert.strictEqual(
      lines[0],
      `[tenantpool] installing ${what} with scripts/services-install.sh (the first time takes a few minutes; ` +
        "log: .tenantpool/services-install.log)"
    )
    assert.match(lines[1]!, new RegExp(`^\\[tenantpool\\] installing .*: \\d+ s, apt-get install postgresql-15`))
    assert.match(lines.at(-2)!, /: \d+ s, building Toxiproxy v2\.12\.0 with go1\.24\.13$/)
    assert.match(lines.at(-1)!, new RegExp(`^\\[tenantpool\\] installed ${what.replace(/[()]/g, "\\$&")} in \\d+ s$`))
    assert.strictEqual(fs.readFileSync(path.join(m.home, "installer-args"), "utf8").trim(), "--with-ui")
    // Installed now: the next check is silent.
    assert.deepStrictEqual(await ensure(m, "test", path.join(m.dir, "repo", "scripts", "services-ensure.ts")), {
      code: 0,
      stdout: "",
      stderr: ""
    })
  })

  it("for `npm start`, installs the database servers only; a failed install shows the log's end and exits 1", async () => {
    const m = machine({ uid: 0, apt: true })
    const script = withStandIn(m)
    const failed = await ensure(m, "start", script, { FAIL: "1" })
    assert.strictEqual(failed.code, 1)
    assert.strictEqual(fs.readFileSync(path.join(m.home, "installer-args"), "utf8").trim(), "--without-toxiproxy")
    assert.match(
      failed.stderr,
      /^\[tenantpool\] installing PostgreSQL, Redis and FerretDB \(a MongoDB-wire server\) failed after \d+ s \(exit 100\); the end of \.tenantpool\/services-install\.log:\n/
    )
    assert.include(failed.stderr, "E: Unable to locate package postgresql-15")
    assert.notMatch(failed.stderr, stackTrace)
    const installed = await ensure(m, "start", script)
    assert.strictEqual(installed.code, 0, installed.stderr)
    assert.match(installed.stdout, /installed PostgreSQL, Redis and FerretDB \(a MongoDB-wire server\) in \d+ s\n$/)
  })
})
