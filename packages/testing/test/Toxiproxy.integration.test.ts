// Toxiproxy through the harness, on the shared Redis (a proxy disturbs only the connections made through it): each
// toxic does to a raw socket what its name says, and scopes take every fault back. The client here is a bare TCP
// socket speaking Redis's inline protocol, so what is observed is the proxy, not a driver's reaction to it.
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Scope from "effect/Scope"
import * as net from "node:net"
import * as TestServers from "../src/TestServers.ts"
import * as Toxiproxy from "../src/Toxiproxy.ts"

type Reply =
  | { readonly _tag: "reply"; readonly text: string; readonly ms: number }
  | { readonly _tag: "refused" | "reset" | "closed" | "silent"; readonly ms: number }

/** Connects, sends `PING`, waits up to `waitMs` for `+PONG`. */
const ping = (port: number, waitMs = 2_000, payload = "PING\r\n"): Effect.Effect<Reply> =>
  Effect.callback<Reply>((resume) => {
    const started = performance.now()
    const socket = net.connect({ host: "127.0.0.1", port })
    let text = ""
    const done = (reply: Reply) => {
      clearTimeout(timer)
      socket.destroy()
      resume(Effect.succeed(reply))
    }
    const ms = () => performance.now() - started
    const timer = setTimeout(() => done({ _tag: "silent", ms: ms() }), waitMs)
    socket.on("connect", () => socket.write(payload))
    socket.on("data", (chunk) => {
      text += chunk.toString("latin1")
      if (text.endsWith("\r\n")) done({ _tag: "reply", text: text.trim(), ms: ms() })
    })
    socket.on("error", (error: NodeJS.ErrnoException) =>
      done({
        _tag: error.code === "ECONNREFUSED" ? "refused" : error.code === "ECONNRESET" ? "reset" : "closed",
        ms: ms()
      })
    )
    socket.on("close", () => done({ _tag: "closed", ms: ms() }))
  })

const redis = () => TestServers.info("redis")

describe("Toxiproxy", () => {
  it.live("forwards to the server, and is deleted when its scope closes", () =>
    Effect.gen(function* () {
      const info = yield* Toxiproxy.Toxiproxy
      assert.match(info.version, /^v2\./)
      const scope = yield* Scope.make()
      const { proxy, url } = yield* Toxiproxy.proxyServer(redis()).pipe(Scope.provide(scope))
      assert.strictEqual(new URL(url).port, String(proxy.port))
      assert.isTrue(proxy.port < 32768, `a port outside the ephemeral range (${proxy.port})`)
      const reply = yield* ping(proxy.port)
      assert.deepInclude(reply, { _tag: "reply", text: "+PONG" })
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual((yield* ping(proxy.port))._tag, "refused")
    }).pipe(Effect.provide(Toxiproxy.layer))
  )

  it.live("down refuses new connections and closes open ones; the scope brings it back", () =>
    Effect.gen(function* () {
      const { proxy } = yield* Toxiproxy.proxyServer(redis())
      // A connection open across the fault: it must be closed by it, not left hanging.
      const open = yield* Effect.forkChild(ping(proxy.port, 3_000, ""))
      yield* Effect.sleep("100 millis")
      yield* Toxiproxy.withDown(proxy)(
        Effect.gen(function* () {
          assert.isFalse(yield* Toxiproxy.enabled(proxy))
          assert.strictEqual((yield* ping(proxy.port))._tag, "refused")
        })
      )
      const held = yield* Fiber.join(open)
      assert.include(["closed", "reset"], held._tag)
      assert.isTrue(held.ms < 2_000, `the open connection was closed by the fault (${held.ms} ms)`)
      assert.isTrue(yield* Toxiproxy.enabled(proxy))
      assert.deepInclude(yield* ping(proxy.port), { _tag: "reply", text: "+PONG" })
    }).pipe(Effect.provide(Toxiproxy.layer))
  )

  it.live("latency delays the reply; the toxic is gone after withToxic", () =>
    Effect.gen(function* () {
      const { proxy } = yield* Toxiproxy.proxyServer(redis())
      const slow = yield* Toxiproxy.withToxic(proxy, Toxiproxy.latency(300, { jitter: 20 }))(ping(proxy.port))
      assert.strictEqual(slow._tag, "reply")
      assert.isTrue(slow.ms >= 270, `delayed by the latency (${slow.ms} ms)`)
      assert.deepStrictEqual(yield* Toxiproxy.toxics(proxy), [])
      const fast = yield* ping(proxy.port)
      assert.isTrue(fast.ms < 200, `no latency afterwards (${fast.ms} ms)`)
    }).pipe(Effect.provide(Toxiproxy.layer))
  )

  it.live("blackhole swallows the request and holds the connection open", () =>
    Effect.gen(function* () {
      const { proxy } = yield* Toxiproxy.proxyServer(redis())
      const reply = yield* Toxiproxy.withToxic(proxy, Toxiproxy.blackhole())(ping(proxy.port, 700))
      assert.strictEqual(reply._tag, "silent")
      assert.strictEqual((yield* Toxiproxy.toxics(proxy)).length, 0, "both directions' toxics are removed")
    }).pipe(Effect.provide(Toxiproxy.layer))
  )

  it.live("reset_peer answers with a TCP reset; limit_data cuts the reply short", () =>
    Effect.gen(function* () {
      const { proxy } = yield* Toxiproxy.proxyServer(redis())
      const reset = yield* Toxiproxy.withToxic(proxy, Toxiproxy.resetPeer(0))(ping(proxy.port))
      assert.strictEqual(reset._tag, "reset")
      const cut = yield* Toxiproxy.withToxic(proxy, Toxiproxy.limitData(3))(ping(proxy.port))
      assert.strictEqual(cut._tag, "closed", "the reply `+PONG\\r\\n` never arrives whole")
    }).pipe(Effect.provide(Toxiproxy.layer))
  )

  it.live("slicer and bandwidth still deliver the reply intact", () =>
    Effect.gen(function* () {
      const { proxy } = yield* Toxiproxy.proxyServer(redis())
      const sliced = yield* Toxiproxy.withToxic(
        proxy,
        Toxiproxy.slicer({ averageSize: 1, delayMicros: 10_000 })
      )(ping(proxy.port))
      assert.deepInclude(sliced, { _tag: "reply", text: "+PONG" })
      const throttled = yield* Toxiproxy.withToxic(proxy, Toxiproxy.bandwidth(1))(ping(proxy.port))
      assert.deepInclude(throttled, { _tag: "reply", text: "+PONG" })
    }).pipe(Effect.provide(Toxiproxy.layer))
  )

  it.live("without a Toxiproxy the layer fails, saying how to get one", () =>
    Effect.gen(function* () {
      const before = process.env["TENANTPOOL_TOXIPROXY_URL"]
      process.env["TENANTPOOL_TOXIPROXY_URL"] = "http://127.0.0.1:1"
      const exit = yield* Effect.exit(Effect.scoped(Toxiproxy.acquire)).pipe(
        Effect.ensuring(
          Effect.sync(() => {
            if (before === undefined) delete process.env["TENANTPOOL_TOXIPROXY_URL"]
            else process.env["TENANTPOOL_TOXIPROXY_URL"] = before
          })
        )
      )
      assert.isTrue(Exit.isFailure(exit))
      const error = Exit.isFailure(exit) ? exit.cause.reasons[0] : undefined
      assert.include(JSON.stringify(error), "TENANTPOOL_TOXIPROXY_URL")
    })
  )
})
