/**
 * Network faults between a client and a real server, with Toxiproxy (Shopify/toxiproxy): a TCP proxy per server
 * whose faults ("toxics") are switched on and off over its HTTP API while traffic flows. The harness starts its own
 * `toxiproxy-server` (built by `npm run services:install` into `~/.cache/tenantpool/bin`) or drives the one in
 * `TENANTPOOL_TOXIPROXY_URL`; without either, `layer` fails and says how to get one.
 *
 * Everything is scoped: a proxy is deleted, a toxic removed and a downed proxy brought back when its scope closes,
 * so a failing test cannot leave a fault behind for the next one.
 *
 * ```ts
 * const { proxy, url } = yield* Toxiproxy.proxyServer(server) // the client connects to `url`
 * yield* Toxiproxy.withToxic(proxy, Toxiproxy.latency(200, { jitter: 50 }))(traffic)
 * yield* Toxiproxy.withDown(proxy)(Effect.sleep("2 seconds"))
 * ```
 *
 * @since 0.1.0
 */
import * as crypto from "node:crypto"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import { LOOPBACK, freeStablePort } from "./internal/ports.ts"
import { acquireDaemon, NoToxiproxy } from "./internal/toxiproxyProcess.ts"
import type { ServerInfo } from "./Servers.ts"

/**
 * Toxiproxy could not be had (`unavailable`), did not start (`start`), or refused a request (`api`).
 *
 * @category errors
 * @since 0.1.0
 */
export class ToxiproxyError extends Schema.TaggedError<ToxiproxyError>()("ToxiproxyError", {
  reason: Schema.Literals(["unavailable", "start", "api"]),
  message: Schema.String
}) {}

/**
 * A running Toxiproxy: where its HTTP API answers, and its version.
 *
 * @category models
 * @since 0.1.0
 */
export interface ToxiproxyInfo {
  readonly apiUrl: string
  readonly version: string
  /** `local`: started by this scope; `env`: the one in TENANTPOOL_TOXIPROXY_URL. */
  readonly source: "local" | "env"
}

/**
 * The Toxiproxy the fault functions drive.
 *
 * @category services
 * @since 0.1.0
 */
export class Toxiproxy extends Context.Service<Toxiproxy, ToxiproxyInfo>()("@tenantpool/testing/Toxiproxy") {}

const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error))

/**
 * Starts a Toxiproxy for the scope (or attaches to TENANTPOOL_TOXIPROXY_URL); a started one is stopped when the
 * scope closes, and every proxy it held goes with it.
 *
 * @category constructors
 * @since 0.1.0
 */
export const acquire: Effect.Effect<ToxiproxyInfo, ToxiproxyError, Scope.Scope> = Effect.acquireRelease(
  Effect.tryPromise({
    try: () => acquireDaemon(),
    catch: (error) =>
      new ToxiproxyError({ reason: error instanceof NoToxiproxy ? "unavailable" : "start", message: messageOf(error) })
  }),
  (daemon) => Effect.promise(() => daemon.close().catch(() => undefined))
).pipe(Effect.map(({ apiUrl, source, version }) => ({ apiUrl, source, version })))

/**
 * `acquire` as a layer.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer: Layer.Layer<Toxiproxy, ToxiproxyError> = Layer.effect(Toxiproxy, acquire)

// ---------------------------------------------------------------------------------------------------------------
// The HTTP API

const request = <A>(
  method: "GET" | "POST" | "PATCH" | "DELETE",
  path: string,
  body?: unknown
): Effect.Effect<A, ToxiproxyError, Toxiproxy> =>
  Effect.flatMap(Toxiproxy, ({ apiUrl }) =>
    Effect.tryPromise({
      try: async (signal) => {
        const response = await fetch(`${apiUrl}${path}`, {
          method,
          signal: AbortSignal.any([signal, AbortSignal.timeout(10_000)]),
          ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { "content-type": "application/json" } })
        })
        const text = await response.text()
        if (!response.ok) throw new Error(`${method} ${path} answered ${response.status}: ${text.trim()}`)
        return (text === "" ? undefined : JSON.parse(text)) as A
      },
      catch: (error) => new ToxiproxyError({ reason: "api", message: messageOf(error) })
    })
  )

/**
 * Forgets every toxic and re-enables every proxy (`POST /reset`).
 *
 * @category faults
 * @since 0.1.0
 */
export const reset: Effect.Effect<void, ToxiproxyError, Toxiproxy> = request<void>("POST", "/reset")

// ---------------------------------------------------------------------------------------------------------------
// Proxies

/**
 * A proxy: clients connect to `host:port`, Toxiproxy forwards to `upstream`.
 *
 * @category models
 * @since 0.1.0
 */
export interface Proxy {
  readonly name: string
  readonly host: string
  readonly port: number
  /** `host:port` of the real server. */
  readonly upstream: string
}

const uniqueName = (prefix: string): string => `${prefix}_${crypto.randomBytes(4).toString("hex")}`

/**
 * Creates a proxy to `upstream` (`host:port`) listening on a free loopback port outside the ephemeral range (so the
 * port is still free when a downed proxy comes back); deleted when the scope closes.
 *
 * @category constructors
 * @since 0.1.0
 */
export const proxy = (
  upstream: string,
  options?: { readonly name?: string | undefined }
): Effect.Effect<Proxy, ToxiproxyError, Toxiproxy | Scope.Scope> =>
  Effect.acquireRelease(
    Effect.gen(function* () {
      const name = options?.name ?? uniqueName("tp")
      const port = yield* Effect.promise(freeStablePort)
      const created = yield* request<{ readonly listen: string }>("POST", "/proxies", {
        name,
        listen: `${LOOPBACK}:${port}`,
        upstream,
        enabled: true
      })
      const listenPort = Number(created.listen.slice(created.listen.lastIndexOf(":") + 1))
      return { name, host: LOOPBACK, port: listenPort, upstream }
    }),
    (p) => Effect.ignore(request("DELETE", `/proxies/${p.name}`))
  )

/**
 * A server reached through a proxy: the proxy, and the server's URL with the proxy's host and port.
 *
 * @category models
 * @since 0.1.0
 */
export interface ProxiedServer {
  readonly proxy: Proxy
  readonly url: string
}

/**
 * Puts a proxy in front of a server of the harness and returns the URL to connect through (same credentials,
 * database and options; the proxy's host and port).
 *
 * @category constructors
 * @since 0.1.0
 */
export const proxyServer = (
  server: Pick<ServerInfo, "url" | "host" | "port" | "kind">,
  options?: { readonly name?: string | undefined }
): Effect.Effect<ProxiedServer, ToxiproxyError, Toxiproxy | Scope.Scope> =>
  Effect.map(proxy(`${server.host}:${server.port}`, { name: options?.name ?? uniqueName(server.kind) }), (p) => ({
    proxy: p,
    url: throughProxy(server.url, p)
  }))

/**
 * `url` with its host and port replaced by the proxy's.
 *
 * @category accessors
 * @since 0.1.0
 */
export const throughProxy = (url: string, p: Pick<Proxy, "host" | "port">): string => {
  const parsed = new URL(url)
  parsed.hostname = p.host
  parsed.port = String(p.port)
  return parsed.toString()
}

const setEnabled = (p: Proxy, enabled: boolean) => request<void>("PATCH", `/proxies/${p.name}`, { enabled })

/**
 * Takes a proxy down: its listener closes (new connections are refused) and its open connections are closed.
 *
 * @category faults
 * @since 0.1.0
 */
export const disable = (p: Proxy): Effect.Effect<void, ToxiproxyError, Toxiproxy> => Effect.asVoid(setEnabled(p, false))

/**
 * Brings a downed proxy back.
 *
 * @category faults
 * @since 0.1.0
 */
export const enable = (p: Proxy): Effect.Effect<void, ToxiproxyError, Toxiproxy> => Effect.asVoid(setEnabled(p, true))

/**
 * Takes a proxy down for the rest of the scope; it comes back when the scope closes.
 *
 * @category faults
 * @since 0.1.0
 */
export const down = (p: Proxy): Effect.Effect<void, ToxiproxyError, Toxiproxy | Scope.Scope> =>
  Effect.acquireRelease(disable(p), () => Effect.ignore(enable(p)))

/**
 * Runs `effect` with the proxy down, bringing it back afterwards whatever happens.
 *
 * @category faults
 * @since 0.1.0
 */
export const withDown =
  (p: Proxy) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | ToxiproxyError, R | Toxiproxy> =>
    Effect.scoped(Effect.andThen(down(p), effect))

// ---------------------------------------------------------------------------------------------------------------
// Toxics

/**
 * Which way a toxic acts: `upstream` on what the client sends, `downstream` on what the server answers, `both`
 * installs one toxic per direction.
 *
 * @category models
 * @since 0.1.0
 */
export type Direction = "upstream" | "downstream" | "both"

/**
 * A toxic to install: Toxiproxy's type and attributes, its direction, and the share of connections it affects
 * (`toxicity`, 0..1, decided per connection).
 *
 * @category models
 * @since 0.1.0
 */
export interface Toxic {
  readonly type: "latency" | "bandwidth" | "slow_close" | "timeout" | "reset_peer" | "slicer" | "limit_data"
  readonly attributes: Readonly<Record<string, number>>
  readonly stream: Direction
  readonly toxicity: number
  /** A label for reports, e.g. `latency 200±50ms`. */
  readonly label: string
}

/**
 * Options every toxic constructor takes.
 *
 * @category models
 * @since 0.1.0
 */
export interface ToxicOptions {
  readonly stream?: Direction | undefined
  readonly toxicity?: number | undefined
}

const make = (
  type: Toxic["type"],
  attributes: Record<string, number>,
  label: string,
  defaultStream: Direction,
  options: ToxicOptions | undefined
): Toxic => ({
  type,
  attributes,
  label,
  stream: options?.stream ?? defaultStream,
  toxicity: options?.toxicity ?? 1
})

/**
 * Delays data by `ms` ± `jitter` (default downstream: replies arrive late).
 *
 * @category toxics
 * @since 0.1.0
 */
export const latency = (ms: number, options?: ToxicOptions & { readonly jitter?: number | undefined }): Toxic =>
  make(
    "latency",
    { latency: ms, jitter: options?.jitter ?? 0 },
    `latency ${ms}${options?.jitter ? `±${options.jitter}` : ""}ms`,
    "downstream",
    options
  )

/**
 * Limits throughput to `kbPerSecond` KB/s (default both ways).
 *
 * @category toxics
 * @since 0.1.0
 */
export const bandwidth = (kbPerSecond: number, options?: ToxicOptions): Toxic =>
  make("bandwidth", { rate: kbPerSecond }, `bandwidth ${kbPerSecond}KB/s`, "both", options)

/**
 * Delays closing a connection by `ms` after the other side closed it.
 *
 * @category toxics
 * @since 0.1.0
 */
export const slowClose = (ms: number, options?: ToxicOptions): Toxic =>
  make("slow_close", { delay: ms }, `slow_close ${ms}ms`, "downstream", options)

/**
 * Stops all data and closes the connection after `ms` (default both ways). Removing it closes the connections it
 * held (Toxiproxy's `Cleanup`).
 *
 * @category toxics
 * @since 0.1.0
 */
export const timeout = (ms: number, options?: ToxicOptions): Toxic =>
  make("timeout", { timeout: ms }, `timeout ${ms}ms`, "both", options)

/**
 * A blackhole: data stops both ways and the connections stay open (`timeout` with 0) — a partition, or a peer that
 * vanished without a FIN. New connections are accepted and then hang too.
 *
 * @category toxics
 * @since 0.1.0
 */
export const blackhole = (options?: ToxicOptions): Toxic =>
  make("timeout", { timeout: 0 }, "blackhole", "both", options)

/**
 * Resets connections (TCP RST) `afterMs` after data arrives in the toxic's direction (default downstream: the
 * request reached the server, the reply is cut).
 *
 * @category toxics
 * @since 0.1.0
 */
export const resetPeer = (afterMs = 0, options?: ToxicOptions): Toxic =>
  make("reset_peer", { timeout: afterMs }, `reset_peer ${afterMs}ms`, "downstream", options)

/**
 * Cuts data into small pieces (`averageSize` ± `sizeVariation` bytes, `delayMicros` apart): fragmented frames.
 *
 * @category toxics
 * @since 0.1.0
 */
export const slicer = (
  slices: { readonly averageSize: number; readonly sizeVariation?: number; readonly delayMicros?: number },
  options?: ToxicOptions
): Toxic =>
  make(
    "slicer",
    {
      average_size: slices.averageSize,
      size_variation: slices.sizeVariation ?? 0,
      delay: slices.delayMicros ?? 0
    },
    `slicer ${slices.averageSize}B`,
    "both",
    options
  )

/**
 * Closes a connection once `bytes` have passed in the toxic's direction (default downstream): a reply truncated
 * mid-frame.
 *
 * @category toxics
 * @since 0.1.0
 */
export const limitData = (bytes: number, options?: ToxicOptions): Toxic =>
  make("limit_data", { bytes }, `limit_data ${bytes}B`, "downstream", options)

/**
 * An installed toxic: the proxy and the names Toxiproxy knows it by (two for `both`).
 *
 * @category models
 * @since 0.1.0
 */
export interface Installed {
  readonly proxy: Proxy
  readonly toxic: Toxic
  readonly names: ReadonlyArray<string>
}

const streams = (direction: Direction): ReadonlyArray<"upstream" | "downstream"> =>
  direction === "both" ? ["upstream", "downstream"] : [direction]

/**
 * Installs a toxic on a proxy until `remove` (not scoped; prefer `addToxic` or `withToxic`).
 *
 * @category faults
 * @since 0.1.0
 */
export const install = (p: Proxy, toxic: Toxic): Effect.Effect<Installed, ToxiproxyError, Toxiproxy> =>
  Effect.map(
    Effect.forEach(streams(toxic.stream), (stream) => {
      const name = uniqueName(`${toxic.type}_${stream}`)
      return Effect.as(
        request("POST", `/proxies/${p.name}/toxics`, {
          name,
          type: toxic.type,
          stream,
          toxicity: toxic.toxicity,
          attributes: toxic.attributes
        }),
        name
      )
    }),
    (names) => ({ proxy: p, toxic, names })
  )

/**
 * Removes an installed toxic (a toxic already gone is not an error).
 *
 * @category faults
 * @since 0.1.0
 */
export const remove = (installed: Installed): Effect.Effect<void, never, Toxiproxy> =>
  Effect.forEach(
    installed.names,
    (name) => Effect.ignore(request("DELETE", `/proxies/${installed.proxy.name}/toxics/${name}`)),
    { discard: true }
  )

/**
 * Installs a toxic for the rest of the scope.
 *
 * @category faults
 * @since 0.1.0
 */
export const addToxic = (p: Proxy, toxic: Toxic): Effect.Effect<Installed, ToxiproxyError, Toxiproxy | Scope.Scope> =>
  Effect.acquireRelease(install(p, toxic), remove)

/**
 * Runs `effect` with the toxic installed, removing it afterwards whatever happens.
 *
 * @category faults
 * @since 0.1.0
 */
export const withToxic =
  (p: Proxy, toxic: Toxic) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | ToxiproxyError, R | Toxiproxy> =>
    Effect.scoped(Effect.andThen(addToxic(p, toxic), effect))

/**
 * The toxics installed on a proxy, as Toxiproxy reports them.
 *
 * @category accessors
 * @since 0.1.0
 */
export const toxics = (
  p: Proxy
): Effect.Effect<
  ReadonlyArray<{ readonly name: string; readonly type: string; readonly stream: string }>,
  ToxiproxyError,
  Toxiproxy
> => request("GET", `/proxies/${p.name}/toxics`)

/**
 * Whether a proxy is up, as Toxiproxy reports it.
 *
 * @category accessors
 * @since 0.1.0
 */
export const enabled = (p: Proxy): Effect.Effect<boolean, ToxiproxyError, Toxiproxy> =>
  Effect.map(request<{ readonly enabled: boolean }>("GET", `/proxies/${p.name}`), (info) => info.enabled)
