// Fault controls on private servers: stop/start keeps the data and the port, kill is a crash, pause makes the
// server hang (commands time out) until resume, and closing removes the process and the data directory. Each test
// starts its own server, so the shared ones are never disturbed.
import { PgClient } from "@effect/sql-pg"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Redacted from "effect/Redacted"
import * as Reactivity from "effect/reactivity/Reactivity"
import * as Scope from "effect/Scope"
import { Redis } from "ioredis"
import { MongoClient } from "mongodb"
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as Servers from "../src/Servers.ts"

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z"
  } catch {
    return false
  }
}

/** One query on a fresh connection, so every call sees the server's current state. */
const pgQuery = <A extends object>(url: string, text: string, startupParameters: Record<string, string> = {}) =>
  Effect.gen(function* () {
    const sql = yield* PgClient.PgClient
    return yield* sql.unsafe<A>(text)
  }).pipe(Effect.provide(PgClient.layer({ url: Redacted.make(url), connectTimeout: "5 seconds", startupParameters })))

const redis = (url: string, options: { readonly commandTimeout?: number } = {}) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, ...options })
      client.on("error", () => {})
      await client.connect()
      return client
    }),
    (client) => Effect.sync(() => client.disconnect())
  )

describe("private PostgreSQL", () => {
  it.live("keeps committed rows, port and URL across stop and start", () =>
    Effect.gen(function* () {
      const server = yield* Servers.acquirePrivate("postgres")
      assert.strictEqual(server.source, "local")
      yield* pgQuery(server.url, "create table kept (id int primary key)")
      yield* pgQuery(server.url, "insert into kept values (1), (2)")
      const before = server.pid()

      yield* Servers.stop(server)
      assert.isFalse(alive(before))
      const refused = yield* Effect.exit(pgQuery(server.url, "select 1"))
      assert.isTrue(Exit.isFailure(refused), "a stopped server must refuse connections")

      yield* Servers.start(server)
      assert.notStrictEqual(server.pid(), before)
      const rows = yield* pgQuery<{ id: number }>(server.url, "select id from kept order by id")
      assert.deepStrictEqual(
        rows.map((row) => row.id),
        [1, 2]
      )
    })
  )

  it.live("recovers durably committed rows after kill (SIGKILL to the postmaster and its backends)", () =>
    Effect.gen(function* () {
      const server = yield* Servers.acquirePrivate("postgres")
      // The test servers run with synchronous_commit=off: a crash may lose the last ~200 ms of commits, so a write
      // that must survive kill() asks for a synchronous commit.
      yield* pgQuery(server.url, "create table survived as select 7 as n", { synchronous_commit: "on" })
      const postmaster = server.pid()
      yield* Servers.kill(server)
      assert.isFalse(alive(postmaster))
      yield* Servers.start(server)
      const rows = yield* pgQuery<{ n: number }>(server.url, "select n from survived")
      assert.deepStrictEqual(rows, [{ n: 7 }])
    })
  )

  it.live("pause holds a query on an open connection until resume, then it completes", () =>
    Effect.gen(function* () {
      const server = yield* Servers.acquirePrivate("postgres")
      const sql = yield* PgClient.make({ url: Redacted.make(server.url), maxConnections: 1 })
      assert.deepStrictEqual(yield* sql`select 1 as one`, [{ one: 1 }])

      yield* Servers.pause(server)
      const pending = yield* sql`select 2 as two`.pipe(Effect.forkChild)
      yield* Effect.sleep("700 millis")
      assert.isUndefined(pending.pollUnsafe(), "a paused server must not answer")

      yield* Servers.resume(server)
      assert.deepStrictEqual(yield* Fiber.join(pending).pipe(Effect.timeout("10 seconds")), [{ two: 2 }])
    }).pipe(Effect.provide(Reactivity.layer))
  )

  it.live("close stops the server and deletes its data directory", () =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const server = yield* Servers.acquirePrivate("postgres").pipe(Scope.provide(scope))
      const pid = server.pid()
      const dir = server.dir!
      assert.isTrue(fs.existsSync(dir))
      yield* Scope.close(scope, Exit.void)
      assert.isFalse(alive(pid))
      assert.isFalse(fs.existsSync(dir))
    })
  )
})

describe("private Redis", () => {
  it.live("stop (SIGTERM) saves a snapshot that start loads; kill loses unsaved writes", () =>
    Effect.gen(function* () {
      const server = yield* Servers.acquirePrivate("redis")
      const before = yield* redis(server.url)
      yield* Effect.promise(() => before.set("kept", "yes"))
      yield* Servers.stop(server)
      yield* Servers.start(server)
      const afterStop = yield* redis(server.url)
      assert.strictEqual(yield* Effect.promise(() => afterStop.get("kept")), "yes")

      yield* Effect.promise(() => afterStop.set("lost", "yes"))
      yield* Servers.kill(server)
      yield* Servers.start(server)
      const afterKill = yield* redis(server.url)
      assert.strictEqual(yield* Effect.promise(() => afterKill.get("kept")), "yes")
      assert.isNull(yield* Effect.promise(() => afterKill.get("lost")))
    })
  )

  it.live("pause makes a command time out, resume makes the next one succeed", () =>
    Effect.gen(function* () {
      const server = yield* Servers.acquirePrivate("redis")
      const client = yield* redis(server.url, { commandTimeout: 300 })
      assert.strictEqual(yield* Effect.promise(() => client.ping()), "PONG")

      yield* Servers.pause(server)
      const paused = yield* Effect.promise(() =>
        client.ping().then(
          () => "answered",
          (error: Error) => error.message
        )
      )
      assert.match(paused, /timed out/i)

      yield* Servers.resume(server)
      assert.strictEqual(yield* Effect.promise(() => client.set("after", "resume")), "OK")
      assert.strictEqual(yield* Effect.promise(() => client.get("after")), "resume")
    })
  )

  it.live("withPaused resumes the server even when the body fails", () =>
    Effect.gen(function* () {
      const server = yield* Servers.acquirePrivate("redis")
      const failed = yield* Servers.withPaused(server, Effect.fail("boom" as const)).pipe(Effect.flip)
      assert.strictEqual(failed, "boom")
      const client = yield* redis(server.url, { commandTimeout: 2_000 })
      assert.strictEqual(yield* Effect.promise(() => client.ping()), "PONG")
    })
  )
})

describe("private MongoDB-wire server", () => {
  it.live("keeps documents across stop and start", () =>
    Effect.gen(function* () {
      const server = yield* Servers.acquirePrivate("mongodb")
      const write = new MongoClient(server.url, { serverSelectionTimeoutMS: 5_000 })
      yield* Effect.promise(() =>
        write
          .db("kept")
          .collection("docs")
          .insertOne({ _id: 1 as never, v: "x" })
      )
      yield* Effect.promise(() => write.close())
      yield* Servers.stop(server)
      yield* Servers.start(server)
      const read = yield* Effect.acquireRelease(
        Effect.promise(() => new MongoClient(server.url, { serverSelectionTimeoutMS: 5_000 }).connect()),
        (client) => Effect.promise(() => client.close())
      )
      const doc = yield* Effect.promise(() => read.db("kept").collection("docs").findOne({}))
      assert.strictEqual(doc?.["v"], "x")
    })
  )
})

describe("controls", () => {
  it.live("act on the record, so a handle attached elsewhere controls the same server", () =>
    Effect.gen(function* () {
      const server = yield* Servers.acquirePrivate("redis")
      const attached = Servers.attach(Servers.info(server))
      const first = server.pid()
      yield* Servers.kill(attached)
      yield* Servers.start(attached)
      assert.notStrictEqual(server.pid(), first)
      assert.strictEqual(server.pid(), attached.pid())
      const client = yield* redis(server.url)
      assert.strictEqual(yield* Effect.promise(() => client.ping()), "PONG")
      // An attached handle does not own the server: closing it leaves the server running.
      yield* Effect.promise(() => attached.close())
      assert.isTrue(alive(server.pid()))
    })
  )

  it.live("a server restarted by another process is still the one close() stops", () =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const server = yield* Servers.acquirePrivate("postgres").pipe(Scope.provide(scope))
      const first = server.pid()
      // What a test worker does to a server the global setup started: attach to its description and restart it.
      const script = [
        `const Servers = await import(${JSON.stringify(new URL("../src/Servers.ts", import.meta.url).href)})`,
        `const handle = Servers.attach(JSON.parse(process.argv[1]))`,
        `await handle.stop()`,
        `await handle.start()`,
        `process.stdout.write(String(handle.pid()))`
      ].join("\n")
      const output = yield* Effect.promise(
        () =>
          new Promise<string>((resolve, reject) =>
            execFile(
              process.execPath,
              ["--input-type=module", "-e", script, JSON.stringify(Servers.info(server))],
              (error, stdout, stderr) => (error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(stdout))
            )
          )
      )
      const restarted = Number(output)
      assert.notStrictEqual(restarted, first)
      assert.strictEqual(server.pid(), restarted)
      assert.deepStrictEqual(yield* pgQuery(server.url, "select 1 as one"), [{ one: 1 }])

      yield* Scope.close(scope, Exit.void)
      assert.isFalse(alive(restarted))
      assert.isFalse(fs.existsSync(server.dir!))
    })
  )

  it.live("start on a running server and pause on a stopped one fail with ServerControlError", () =>
    Effect.gen(function* () {
      const server = yield* Servers.acquirePrivate("redis")
      const running = yield* Servers.start(server).pipe(Effect.flip)
      assert.strictEqual(running._tag, "ServerControlError")
      assert.include(running.message, "already running")
      yield* Servers.stop(server)
      const stopped = yield* Servers.pause(server).pipe(Effect.flip)
      assert.strictEqual(stopped._tag, "ServerControlError")
      assert.include(stopped.message, "not running")
    })
  )
})
