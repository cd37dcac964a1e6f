// The MongoDB rig: a private FerretDB (SQLite: acknowledged writes survive a kill); project A on database
// `chaos_a` through the proxy, project B on `chaos_b` directly. FerretDB runs without users, so A's connection
// string has no canary, and it keeps no client list: connections are counted in the kernel's TCP table (A's at the
// proxy's port, all at the server's). Truth is read with short-lived driver clients, so none is open when
// connections are counted. Transactions need a replica set: there are none here.
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { MongoClient } from "mongodb"
import * as MongoEngine from "@tenantpool/mongodb/MongoEngine"
import * as Servers from "@tenantpool/testing/Servers"
import * as ServerState from "@tenantpool/testing/ServerState"
import * as Toxiproxy from "@tenantpool/testing/Toxiproxy"
import type { Party } from "../History.ts"
import { type Rig, seededKeys, valueOf, withPath } from "../Rig.ts"
import { openLibrary } from "./library.ts"

const DATABASES: Readonly<Record<Party, string>> = { a: "chaos_a", b: "chaos_b" }
const PROJECTS: Readonly<Record<Party, string>> = { a: "chaos-mongo-a", b: "chaos-mongo-b" }

interface Item {
  readonly _id: string
}
interface Echo {
  readonly _id: string
  readonly v: string
}

/** One short-lived client per reading: it waits for a restarted server, and leaves no connection behind. */
const withClient = <A>(url: string, f: (client: MongoClient) => Promise<A>) =>
  Effect.tryPromise(async () => {
    const client = new MongoClient(url, {
      appName: "chaos-truth",
      directConnection: true,
      serverSelectionTimeoutMS: 30_000
    })
    try {
      await client.connect()
      return await f(client)
    } finally {
      await client.close(true).catch(() => undefined)
    }
  })

const escapeRegex = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")

/** Sets the rig up; everything is removed when the scope closes (the server with it). */
export const acquire: Effect.Effect<Rig, unknown, Scope.Scope | Toxiproxy.Toxiproxy> = Effect.gen(function* () {
  const server = yield* Servers.acquirePrivate("mongodb", { durable: true })
  for (const party of ["a", "b"] as const) {
    yield* withClient(server.url, (client) =>
      client
        .db(DATABASES[party])
        .collection<Echo>("echo")
        .insertMany(seededKeys.map((k) => ({ _id: k, v: valueOf(k) })))
    )
  }
  const { proxy, url: proxied } = yield* Toxiproxy.proxyServer(server)
  const urls: Record<Party, string> = { a: withPath(proxied, DATABASES.a), b: withPath(server.url, DATABASES.b) }
  const connections = (who: Party | "all") =>
    Effect.gen(function* () {
      const all = yield* ServerState.tcpConnections(server.port)
      const a = yield* ServerState.tcpConnections(proxy.port)
      // Every connection into the proxy has one from the proxy to the server.
      return who === "all" ? all : who === "a" ? a : Math.max(0, all - a)
    })
  const rig: Rig = {
    engine: "mongodb",
    server,
    toxiproxy: yield* Toxiproxy.Toxiproxy,
    proxy,
    projects: PROJECTS,
    databaseA: DATABASES.a,
    userA: undefined,
    secret: undefined,
    keys: seededKeys,
    truth: {
      finalIds: (party, runId) =>
        withClient(server.url, async (client) => {
          const items = client.db(DATABASES[party]).collection<Item>("items")
          const found = await items.find({ _id: { $regex: `^${escapeRegex(runId)}` } }).toArray()
          return found.map((item) => item._id)
        }),
      connections
    },
    open: (profile, captureLogs) =>
      Effect.gen(function* () {
        const { as, context, tenancy } = yield* openLibrary(MongoEngine.layer(), profile, captureLogs, {
          a: { id: PROJECTS.a, mongodb: urls.a },
          b: { id: PROJECTS.b, mongodb: urls.b }
        })
        const mongo = Context.get(context, MongoEngine.MongoEngine)
        const items = mongo.collection<Item>("items")
        const echo = mongo.collection<Echo>("echo")
        return {
          write: (party, id) => as(party)(items.insertOne({ _id: id })),
          tx: undefined,
          read: (party, key) => as(party)(Effect.map(echo.findOne({ _id: key }), (doc) => doc?.v ?? null)),
          events: tenancy.recentEvents
        }
      })
  }
  return rig
})
