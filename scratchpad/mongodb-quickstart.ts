/**
 * The spec's Quick Start §4 ("Use MongoDB Client") on tenantpool, runnable:
 *
 *   TENANTPOOL_MONGODB_URL=mongodb://127.0.0.1:27017 npx node scratchpad/mongodb-quickstart.ts
 *   npx node scratchpad/mongodb-quickstart.ts        # starts a private local server (FerretDB) and removes it after
 *
 * `createMongoDBClient(projectId, { connectionString, tier })` becomes the `MongoClient.layer` (here
 * `layerStandalone`, which brings the engine and an in-memory tenancy service along); `await mongo.x(…)` becomes
 * `yield* mongo.x(…)`. Every call runs as the project, in its database, through the guard (tier limits, breakers,
 * attempt timeout with maxTimeMS, metrics).
 *
 * The spec's aggregation (`$group` with `$avg`) runs as written on MongoDB. FerretDB v1 does not implement the
 * `$avg` accumulator (nor `$divide` in `$project`) and answers NotImplemented, which arrives as a typed `MongoError`
 * of kind `not_supported`; the script then computes the same average from `$sum` and a count.
 */
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import { MongoClient } from "@tenantpool/mongodb/MongoClient"
import * as MongoClientModule from "@tenantpool/mongodb/MongoClient"
import { MongoError } from "@tenantpool/mongodb/MongoError"
import * as Servers from "@tenantpool/testing/Servers"

const envUrl = process.env["TENANTPOOL_MONGODB_URL"] ?? process.env["MONGODB_URL"]
const server = envUrl === undefined ? await Servers.startPrivateServer("mongodb") : undefined
const withDatabase = (url: string, database: string) => {
  const u = new URL(url)
  if (u.username !== "" && !u.searchParams.has("authSource")) {
    u.searchParams.set("authSource", u.pathname.replace(/^\//, "") || "admin")
  }
  u.pathname = `/${database}`
  return u.toString()
}
// The project's own database on the server (the spec's MONGODB_URL, with a database chosen for the project).
const connectionString = withDatabase(envUrl ?? server!.url, "tenantpool_quickstart")

interface User {
  readonly name: string
  readonly email: string
  readonly age?: number
  readonly createdAt: Date
}

const program = Effect.gen(function* () {
  const mongo = yield* MongoClient
  yield* mongo.deleteMany("users") // start from an empty collection, so that the script can run again

  // Insert document
  yield* mongo.insertOne<User>("users", {
    name: "Jane Doe",
    email: "jane@example.com",
    createdAt: new Date()
  })
  yield* mongo.insertMany<User>("users", [
    { name: "Jane", email: "jane.s@example.com", age: 28, createdAt: new Date() },
    { name: "Sam", email: "sam@example.com", age: 16, createdAt: new Date() },
    { name: "Ola", email: "ola@example.com", age: 41, createdAt: new Date() }
  ])

  // Find documents
  const users = yield* mongo.find<User>("users", { age: { $gte: 18 } })
  yield* Console.log(
    "Adults:",
    users.map((u) => `${u.name} (${u.age})`)
  )

  // Update document
  const updated = yield* mongo.updateOne<User>("users", { name: "Jane" }, { $set: { age: 29 } })
  yield* Console.log("Updated:", updated.modifiedCount)

  // Aggregate
  const stats = yield* mongo.aggregate("users", [{ $group: { _id: null, avgAge: { $avg: "$age" } } }]).pipe(
    Effect.catchIf(
      (e): e is MongoError => e instanceof MongoError && e.kind === "not_supported",
      (e) =>
        Effect.gen(function* () {
          yield* Console.log(`$avg is not available on this server (${e.detail}); using $sum and a count`)
          const [sum] = yield* mongo.aggregate("users", [
            { $match: { age: { $exists: true } } },
            { $group: { _id: null, total: { $sum: "$age" } } }
          ])
          const count = yield* mongo.countDocuments("users", { age: { $exists: true } })
          return [{ _id: null, avgAge: count === 0 ? null : (sum?.["total"] as number) / count }]
        })
    )
  )
  yield* Console.log("Stats:", stats)

  // Health check and pool stats
  yield* Console.log("Healthy:", yield* mongo.healthCheck)
  const pool = yield* mongo.getPoolStats
  yield* Console.log("Pool:", pool.size, "Available:", pool.available, "Pending:", pool.pending)

  // Cleanup
  yield* mongo.close
}).pipe(
  Effect.provide(MongoClientModule.layerStandalone("my-project-id", { connectionString, tier: "PRO" })),
  Effect.tapCause((cause) => Console.error("Quick Start failed:", cause))
)

try {
  await Effect.runPromise(program)
} finally {
  await server?.close()
}
