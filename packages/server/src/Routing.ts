/**
 * What the router answers on its own, made to answer like a good HTTP API:
 *
 * - a path that exists with the wrong method: 405 with `Allow` (and `OPTIONS` on it: 204 with `Allow`);
 * - a path that does not exist: 404 with a JSON body;
 * - request bodies are read up to `Input.maxBodyBytes` (a 413 that says so, from `Input.readJson`);
 * - a request Node itself refuses (request line and headers over 16 KiB, a malformed request): the status Node
 *   would send, with a JSON body instead of an empty one.
 *
 * Effect's router knows which methods a path has but does not say; so the route layers are given an indexing
 * router (`layerIndexed`) that records each route in a `RouteIndex` as it registers it with the real one, and the
 * fallback middleware asks the index. Every route goes through it, `/metrics` included, so `Allow` cannot drift
 * from the routes.
 *
 * @since 0.1.0
 */
import type * as Http from "node:http"
import * as ByteSize from "effect/ByteSize"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import { FindMyWay, HttpIncomingMessage, HttpRouter, HttpServerError, HttpServerRequest } from "effect/http"
import { HttpServerResponse } from "effect/http"
import * as Layer from "effect/Layer"
import { count, errorResponse } from "./ErrorResponses.ts"
import { maxBodyBytes } from "./Input.ts"

/**
 * Node's limit on the request line and headers together (its `maxHeaderSize` default), in bytes.
 *
 * @category constants
 * @since 0.1.0
 */
export const maxHeaderBytes = 16 * 1024

/**
 * The router's limit on one path parameter: above anything Node lets through, so every parameter reaches the
 * handlers' own checks (which state the real limits).
 *
 * @category constants
 * @since 0.1.0
 */
export const maxParamLength = maxHeaderBytes

/**
 * The registered routes, by method and path pattern: which methods a request path takes.
 *
 * @category services
 * @since 0.1.0
 */
export class RouteIndex extends Context.Service<
  RouteIndex,
  {
    readonly declare: (method: string, path: FindMyWay.PathInput) => void
    /** The methods the path takes (with `HEAD` wherever `GET` is), in a stable order; empty when none. */
    readonly allowed: (url: string) => ReadonlyArray<string>
  }
>()("@tenantpool/server/Routing/RouteIndex") {}

const methodOrder = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "QUERY", "OPTIONS"]

/**
 * An empty route index.
 *
 * @category constructors
 * @since 0.1.0
 */
export const makeIndex = (): RouteIndex["Service"] => {
  const router = FindMyWay.make<true>({ maxParamLength })
  const methods = new Set<string>()
  return RouteIndex.of({
    declare: (method, path) => {
      // A "*" route takes every method: no 405 can come from its path, so it needs no entry.
      if (method === "*") return
      methods.add(method)
      router.on(method, path, true)
    },
    allowed: (url) => {
      const found = new Set<string>()
      for (const m of methods) if (router.find(m, url) !== undefined) found.add(m)
      if (found.has("GET")) found.add("HEAD")
      return methodOrder.filter((m) => found.has(m))
    }
  })
}

/**
 * The route index as a layer (one per server).
 *
 * @category layers
 * @since 0.1.0
 */
export const layerIndex: Layer.Layer<RouteIndex> = Layer.sync(RouteIndex, makeIndex)

/**
 * An `HttpRouter` for route layers that records every route it adds in the `RouteIndex`, then adds it to the real
 * router (the one `HttpRouter.serve` provides).
 *
 * @category layers
 * @since 0.1.0
 */
export const layerIndexed: Layer.Layer<HttpRouter.HttpRouter, never, HttpRouter.HttpRouter | RouteIndex> = Layer.effect(
  HttpRouter.HttpRouter,
  Effect.gen(function* () {
    const router = yield* HttpRouter.HttpRouter
    const index = yield* RouteIndex
    return HttpRouter.HttpRouter.of({
      ...router,
      add: (method, path, handler, options) =>
        Effect.andThen(
          Effect.sync(() => index.declare(method, path)),
          router.add(method, path, handler, options)
        ),
      addAll: (routes) =>
        Effect.andThen(
          Effect.sync(() => routes.forEach((r) => index.declare(r.method, r.path))),
          router.addAll(routes)
        )
    })
  })
)

// The router's own failures, answered in the one JSON shape.
const routeFallback = (index: RouteIndex["Service"], error: HttpServerError.HttpServerError) =>
  Effect.gen(function* () {
    if (error.reason._tag !== "RouteNotFound")
      return errorResponse(400, { error: "BadRequest", message: error.message })
    const request = yield* HttpServerRequest.HttpServerRequest
    const path = request.url.split("?")[0]!
    const allow = index.allowed(request.url)
    if (allow.length === 0) {
      return errorResponse(404, { error: "RouteNotFound", message: `no route for ${request.method} ${short(path)}` })
    }
    if (request.method === "OPTIONS") {
      return HttpServerResponse.empty({ status: 204, headers: { allow: [...allow, "OPTIONS"].join(", ") } })
    }
    return errorResponse(405, {
      error: "MethodNotAllowed",
      message: `${request.method} is not allowed on ${short(path)}; allowed: ${allow.join(", ")}`,
      allow
    })
  })

// Paths are echoed only in part: a 10,000-character path would otherwise come back whole.
const short = (path: string): string =>
  path.length <= 120 ? path : `${path.slice(0, 100)}… (${count(path.length)} characters)`

/**
 * The global middleware: the body size limit for every route, and JSON answers (404, 405, `OPTIONS`) where the
 * router would answer with an empty body.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerFallback = HttpRouter.middleware<{ handles: HttpServerError.HttpServerError }>()(
  Effect.gen(function* () {
    const index = yield* RouteIndex
    const limit = ByteSize.bytes(maxBodyBytes)
    return (httpEffect) =>
      httpEffect.pipe(
        Effect.provideService(HttpIncomingMessage.MaxBodySize, limit),
        Effect.catchIf(HttpServerError.isHttpServerError, (error) => routeFallback(index, error))
      )
  }),
  { global: true }
)

// What Node's own `clientError` answers are, with a body: the status it would send and why.
const clientErrorAnswer = (code: string | undefined): readonly [number, string, string, number | undefined] => {
  switch (code) {
    case "HPE_HEADER_OVERFLOW":
      return [
        431,
        "HeadersTooLarge",
        `the request line and headers are larger than the limit of ${count(maxHeaderBytes)} bytes`,
        maxHeaderBytes
      ]
    case "ERR_HTTP_REQUEST_TIMEOUT":
      return [408, "RequestTimeout", "the request did not arrive in time", undefined]
    default:
      return [400, "BadRequest", "malformed HTTP request", undefined]
  }
}

/**
 * Node's HTTP server, answering the requests it refuses before any handler runs (headers over `maxHeaderBytes`,
 * malformed requests, timeouts) with the same JSON error shape instead of an empty body.
 *
 * @category constructors
 * @since 0.1.0
 */
export const withJsonClientErrors = (server: Http.Server): Http.Server =>
  server.on("clientError", (err: NodeJS.ErrnoException, socket) => {
    // A reset connection, or one a response already started on, cannot take an answer.
    if (err.code === "ECONNRESET" || !socket.writable || (socket as { _httpMessage?: unknown })._httpMessage) {
      socket.destroy()
      return
    }
    const [status, error, message, limit] = clientErrorAnswer(err.code)
    const body = JSON.stringify({ error, message, ...(limit === undefined ? {} : { limit }) })
    const reason =
      status === 431 ? "Request Header Fields Too Large" : status === 408 ? "Request Timeout" : "Bad Request"
    socket.end(
      `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
        `Connection: close\r\n\r\n${body}`
    )
  })
