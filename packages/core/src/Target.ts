/**
 * Targets: where an engine's connections go. A target is parsed from a project's connection string and
 * normalized, so that projects on the same server, user and database share one set of connections.
 * The secret is kept `Redacted`; nothing derived from it is ever printed.
 *
 * @since 0.1.0
 */
import { createHash } from "node:crypto"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import type { Engine } from "./Vocabulary.ts"
import { InvalidConnectionString } from "./Errors.ts"

/**
 * TLS mode of a target, in libpq's vocabulary (Redis and MongoDB map onto it).
 *
 * @category models
 * @since 0.1.0
 */
export type TlsMode = "disable" | "prefer" | "require" | "verify-ca" | "verify-full"

/**
 * A normalized database target.
 *
 * @category models
 * @since 0.1.0
 */
export interface Target {
  readonly engine: Engine
  /** Identity for sharing connections. Opaque; contains a one-way fingerprint of the secret, never print it. */
  readonly key: string
  /** Host names, lower-cased (several for a MongoDB seed list). */
  readonly hosts: ReadonlyArray<{ readonly host: string; readonly port: number }>
  readonly host: string
  readonly port: number
  /** PostgreSQL database, Redis db number, or MongoDB database. */
  readonly database: string
  readonly user: string | undefined
  readonly password: Redacted.Redacted<string> | undefined
  readonly tls: TlsMode
  /** Query parameters other than credentials. */
  readonly params: Readonly<Record<string, string>>
  /** The whole connection string, for the driver only. */
  readonly url: Redacted.Redacted<string>
  /** A safe display form: `postgres://user@host:5432/db`. */
  readonly label: string
}

/**
 * Options for parsing.
 *
 * @category models
 * @since 0.1.0
 */
export interface ParseOptions {
  /**
   * `"verify-remote"` rejects a target on a non-loopback host unless it verifies the server's certificate.
   * Default `"any"`.
   */
  readonly tlsPolicy?: "any" | "verify-remote" | undefined
}

const schemes: Readonly<Record<Engine, ReadonlyArray<string>>> = {
  postgres: ["postgres", "postgresql"],
  redis: ["redis", "rediss"],
  mongodb: ["mongodb", "mongodb+srv"]
}
const defaultPort: Readonly<Record<Engine, number>> = { postgres: 5432, redis: 6379, mongodb: 27017 }
const hostPattern = /^(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*$|^\[[0-9a-f:.]+\]$/
const credentialParams = new Set(["password", "pass", "pwd", "secret", "auth", "authtoken", "sslpassword"])

class ParseError {
  readonly field: string
  readonly reason: string
  constructor(field: string, reason: string) {
    this.field = field
    this.reason = reason
  }
}

const decode = (field: string, s: string): string => {
  try {
    return decodeURIComponent(s)
  } catch {
    throw new ParseError(field, "bad percent-encoding")
  }
}

const isLoopback = (host: string) =>
  host === "localhost" || host.startsWith("127.") || host === "[::1]" || host.endsWith(".localhost")

const parseUnsafe = (engine: Engine, input: string, options: ParseOptions | undefined): Target => {
  if (input.length === 0) throw new ParseError("url", "is empty")
  if (input.length > 4096) throw new ParseError("url", "is longer than 4096 characters")
  // eslint-disable-next-line no-control-regex -- rejecting control characters is the point
  if (/[\s\u0000-\u001f]/.test(input)) throw new ParseError("url", "contains white space or control characters")
  const schemeEnd = input.indexOf("://")
  if (schemeEnd <= 0) throw new ParseError("scheme", `expected ${schemes[engine].join(" or ")}://…`)
  const scheme = input.slice(0, schemeEnd).toLowerCase()
  if (!schemes[engine].includes(scheme)) {
    throw new ParseError("scheme", `expected ${schemes[engine].join(" or ")}, got a different scheme`)
  }
  let rest = input.slice(schemeEnd + 3)
  let query = ""
  const q = rest.indexOf("?")
  if (q >= 0) {
    query = rest.slice(q + 1)
    rest = rest.slice(0, q)
  }
  const hash = rest.indexOf("#")
  if (hash >= 0) throw new ParseError("url", "must not contain a fragment (#)")
  const slash = rest.indexOf("/")
  const authority = slash >= 0 ? rest.slice(0, slash) : rest
  const path = slash >= 0 ? rest.slice(slash + 1) : ""
  const at = authority.lastIndexOf("@")
  const userinfo = at >= 0 ? authority.slice(0, at) : undefined
  const hostlist = at >= 0 ? authority.slice(at + 1) : authority

  let user: string | undefined
  let password: string | undefined
  if (userinfo !== undefined) {
    const colon = userinfo.indexOf(":")
    user = decode("user", colon >= 0 ? userinfo.slice(0, colon) : userinfo)
    password = colon >= 0 ? decode("password", userinfo.slice(colon + 1)) : undefined
    if (user.length === 0) user = undefined
  }

  if (hostlist.length === 0) throw new ParseError("host", "is missing")
  const hosts = hostlist.split(",").map((entry) => {
    let host = entry
    let port = defaultPort[engine]
    const m = /^(\[[^\]]*\]|[^:]*)(?::(.*))?$/.exec(entry)
    if (m === null) throw new ParseError("host", "is malformed")
    host = decode("host", m[1]!).toLowerCase()
    if (m[2] !== undefined) {
      if (!/^\d{1,5}$/.test(m[2])) throw new ParseError("port", "must be a number from 1 to 65535")
      port = Number(m[2])
      if (port < 1 || port > 65535) throw new ParseError("port", "must be a number from 1 to 65535")
    }
    if (host.length === 0 || host.length > 253 || !hostPattern.test(host)) {
      throw new ParseError("host", "is not a valid host name or address")
    }
    return { host, port }
  })
  if (hosts.length > 1 && engine !== "mongodb") throw new ParseError("host", "only MongoDB accepts several hosts")
  if (scheme === "mongodb+srv" && (hosts.length > 1 || hostlist.includes(":"))) {
    throw new ParseError("host", "mongodb+srv takes one host name and no port")
  }

  const params: Record<string, string> = {}
  if (query.length > 0) {
    for (const pair of query.split("&")) {
      if (pair.length === 0) continue
      const eq = pair.indexOf("=")
      const name = decode("query", eq >= 0 ? pair.slice(0, eq) : pair)
      const value = decode(`query.${name}`, eq >= 0 ? pair.slice(eq + 1) : "")
      if (name in params) throw new ParseError(`query.${name}`, "is given twice")
      if (credentialParams.has(name.toLowerCase())) {
        if (password !== undefined) throw new ParseError(`query.${name}`, "duplicates the password")
        password = value
        continue
      }
      params[name] = value
    }
  }

  let database: string
  let tls: TlsMode
  const pathDecoded = decode("database", path)
  switch (engine) {
    case "postgres": {
      database = pathDecoded.length > 0 ? pathDecoded : (params["dbname"] ?? user ?? "postgres")
      if (database.length > 63) throw new ParseError("database", "is longer than 63 bytes")
      const mode = params["sslmode"] ?? "prefer"
      if (!["disable", "allow", "prefer", "require", "verify-ca", "verify-full"].includes(mode)) {
        throw new ParseError("query.sslmode", "must be disable, prefer, require, verify-ca or verify-full")
      }
      tls = (mode === "allow" ? "prefer" : mode) as TlsMode
      break
    }
    case "redis": {
      const db = pathDecoded.length > 0 ? pathDecoded : (params["db"] ?? "0")
      if (!/^\d{1,5}$/.test(db)) throw new ParseError("database", "must be a Redis database number")
      database = String(Number(db))
      tls = scheme === "rediss" ? "verify-full" : "disable"
      break
    }
    case "mongodb": {
      database = pathDecoded.length > 0 ? pathDecoded : "test"
      if (/[/\\. "$*<>:|?]/.test(database) || database.length > 63) {
        throw new ParseError("database", "is not a valid MongoDB database name")
      }
      const on = (name: string) => (params[name] ?? "").toLowerCase() === "true"
      tls =
        scheme === "mongodb+srv" || on("tls") || on("ssl")
          ? on("tlsInsecure") || on("tlsAllowInvalidCertificates")
            ? "require"
            : "verify-full"
          : "disable"
      break
    }
  }
  if (options?.tlsPolicy === "verify-remote" && tls !== "verify-full" && !hosts.every((h) => isLoopback(h.host))) {
    throw new ParseError("tls", "a non-loopback host must verify the server certificate (verify-full)")
  }

  const first = hosts[0]!
  const hostKey = hosts.map((h) => `${h.host}:${h.port}`).join(",")
  const fingerprint =
    password === undefined ? "-" : createHash("sha256").update(password).digest("base64url").slice(0, 16)
  // MongoDB projects share a client per server and pick their database on it; the others bind a database.
  const keyDatabase = engine === "mongodb" ? "" : database
  const safeParams = Object.keys(params)
    .sort()
    .map((k) => `${k}=${params[k]}`)
    .join("&")
  // `postgresql://` is an alias of `postgres://`: the same server must not get a second set of connections.
  const keyScheme = scheme === "postgresql" ? "postgres" : scheme
  const key = `${engine}|${keyScheme}|${hostKey}|${user ?? ""}|${keyDatabase}|${tls}|${safeParams}|${fingerprint}`
  const label = `${scheme}://${user !== undefined ? `${encodeURIComponent(user)}@` : ""}${hostKey}/${database}`
  return {
    engine,
    key,
    hosts,
    host: first.host,
    port: first.port,
    database,
    user,
    password: password === undefined ? undefined : Redacted.make(password),
    tls,
    params,
    url: Redacted.make(input),
    label
  }
}

// The options, read once: undefined, or an object whose `tlsPolicy` is undefined, "any" or "verify-remote".
const readParseOptions = (options: unknown): ParseOptions | undefined => {
  if (options === undefined) return undefined
  if (typeof options !== "object" || options === null) throw new ParseError("options", "must be an object")
  const tlsPolicy: unknown = (options as ParseOptions).tlsPolicy
  if (tlsPolicy !== undefined && tlsPolicy !== "any" && tlsPolicy !== "verify-remote") {
    throw new ParseError("options.tlsPolicy", 'must be "any" or "verify-remote"')
  }
  return { tlsPolicy }
}

/**
 * Parses a connection string, throwing `InvalidConnectionString` (for configuration code and tests).
 *
 * @category constructors
 * @since 0.1.0
 */
export const parseSync = (
  engine: Engine,
  connectionString: string | Redacted.Redacted<string>,
  options?: ParseOptions | undefined
): Target => {
  if (typeof engine !== "string" || !Object.hasOwn(schemes, engine)) {
    throw new InvalidConnectionString({ field: "engine", reason: "must be postgres, redis or mongodb" })
  }
  let field = "connection string"
  try {
    if (typeof connectionString !== "string" && !Redacted.isRedacted(connectionString)) {
      throw new ParseError("connection string", "must be a string or a Redacted string")
    }
    const input = typeof connectionString === "string" ? connectionString : Redacted.value(connectionString)
    if (typeof input !== "string") throw new ParseError("connection string", "must be a string or a Redacted string")
    field = "options"
    const read = readParseOptions(options)
    field = "connection string"
    return parseUnsafe(engine, input, read)
  } catch (e) {
    if (e instanceof ParseError) throw new InvalidConnectionString({ engine, field: e.field, reason: e.reason })
    // Anything else thrown while the input was read (a proxy, a getter, a value that cannot be coerced): the
    // caller's input, named by its field; the thrown value (which may carry the input) is not repeated.
    throw new InvalidConnectionString({ engine, field, reason: "could not be read" })
  }
}

/**
 * Parses a connection string into a target, failing with `InvalidConnectionString` that names the field.
 * The input (which may contain a password) is never part of the error.
 *
 * @category constructors
 * @since 0.1.0
 */
export const parse = (
  engine: Engine,
  connectionString: string | Redacted.Redacted<string>,
  options?: ParseOptions | undefined
): Effect.Effect<Target, InvalidConnectionString> =>
  Effect.suspend(() => {
    try {
      return Effect.succeed(parseSync(engine, connectionString, options))
    } catch (e) {
      return e instanceof InvalidConnectionString ? Effect.fail(e) : Effect.die(e)
    }
  })

/**
 * A stable, non-reversible id of a target, the same in every process that connects to it with the same settings
 * (a hash of `key`): what processes exchange to coordinate about a target (see `Coordination.ts`).
 *
 * @category accessors
 * @since 0.1.0
 */
export const id = (target: Target): string => createHash("sha256").update(target.key).digest("hex").slice(0, 32)
