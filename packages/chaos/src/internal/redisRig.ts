// The Redis rig: a private durable server (AOF, fsync always); project A as ACL user `chaos_a` (canary password)
// on database 1 through the proxy; project B as the default user on database 2, directly. Truth comes from raw
// ioredis clients of the harness's own and from CLIENT LIST.
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import { Redis as IORedis } from "ioredis"
import * as RedisEngine from "@tenantpool/redis/RedisEngine"
import * as Canary from "@tenantpool/testing/Canary"
import * as Faults from "@tenantpool/testing/Faults"
import * as Servers from "@tenantpool/testing/Servers"
import * as ServerState from "@tenantpool/testing/ServerState"
import * as Toxiproxy from "@tenantpool/testing/Toxiproxy"
import type { Party } from "../History.ts"
import { type Rig, seededKeys, valueOf, withCredentials, withPath } from "../Rig.ts"
import { openLibrary } from "./library.ts"

const USER_A = "chaos_a"
const DATABASES: Readonly<Record<Party, number>> = { a: 1, b: 2 }
const PROJECTS: Readonly<Record<Party, string>> = { a: "chaos-redis-a", b: "chaos-redis-b" }

/** The library prefixes a project's keys with `<project>:`. */
const key = (party: Party, name: string) => `${PROJECTS[party]}:${name}`
/** One list per run: ids are `<runId>:<party>:<seq>`. */
const listOf = (id: string) => `items:${id.slice(0, id.indexOf(":"))}`

/** A raw client that waits for a restarted server (queues while reconnecting), closed with the scope. */
const rawClient = (url: string) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const client = new IORedis(url, {
        lazyConnect: true,
        connectionName: "chaos-truth",
        maxRetriesPerRequest: null,
        retryStrategy: () => 100
      })
      client.on("error", () => {})
      await client.connect()
      return client
    }),
    (client) => Effect.sync(() => client.disconnect())
  )

const call = <A>(f: () => Promise<A>) => Effect.tryPromise(f)

/** Sets the rig up; everything is removed when the scope closes (the server with it). */
export const acquire: Effect.Effect<Rig, unknown, Scope.Scope | Toxiproxy.Toxiproxy> = Effect.gen(function* () {
  const server = yield* Servers.acquirePrivate("redis", { durable: true })
  const secret = Canary.make().secret
  yield* Faults.redisAclUser(server.url, USER_A, secret)
  const truthOf = {
    a: yield* rawClient(withPath(server.url, String(DATABASES.a))),
    b: yield* rawClient(withPath(server.url, String(DATABASES.b)))
  }
  for (const party of ["a", "b"] as const) {
    yield* call(() =>
      truthOf[party].mset(Object.fromEntries(seededKeys.map((k) => [key(party, `echo:${k}`), valueOf(k)])))
    )
  }
  const { proxy, url: proxied } = yield* Toxiproxy.proxyServer(server)
  const urls: Record<Party, string> = {
    a: withCredentials(withPath(proxied, String(DATABASES.a)), USER_A, secret),
    b: withPath(server.url, String(DATABASES.b))
  }
  const mine = (who: Party | "all") => (client: ServerState.RedisClientInfo) =>
    client.name.startsWith("tenantpool") &&
    (who === "all" || (who === "a" ? client.user === USER_A : client.user === "default" && client.db === DATABASES.b))
  const rig: Rig = {
    engine: "redis",
    server,
    toxiproxy: yield* Toxiproxy.Toxiproxy,
    proxy,
    projects: PROJECTS,
    databaseA: String(DATABASES.a),
    userA: { name: USER_A, password: secret },
    secret,
    keys: seededKeys,
    truth: {
      finalIds: (party, runId) => call(() => truthOf[party].lrange(key(party, `items:${runId}`), 0, -1)),
      connections: (who) =>
        Effect.map(ServerState.redisClients(server.url), (clients) => clients.filter(mine(who)).length)
    },
    open: (profile, captureLogs) =>
      Effect.gen(function* () {
        const { as, context, tenancy } = yield* openLibrary(RedisEngine.layer(), profile, captureLogs, {
          a: { id: PROJECTS.a, redis: Redacted.make(urls.a) },
          b: { id: PROJECTS.b, redis: Redacted.make(urls.b) }
        })
        const redis = Context.get(context, RedisEngine.RedisEngine)
        return {
          write: (party, id) => as(party)(redis.rpush(listOf(id), id)),
          tx: (party, [first, second]) =>
            as(party)(
              redis.multi([
                { command: "rpush", args: [listOf(first), first] },
                { command: "rpush", args: [listOf(second), second] }
              ])
            ),
          read: (party, k) => as(party)(redis.get(`echo:${k}`)),
          events: tenancy.recentEvents
        }
      })
  }
  return rig
})
