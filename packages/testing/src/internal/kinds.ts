// The server kinds and the names that go with them, shared by the public modules and the internals.

export type ServerKind = "postgres" | "redis" | "mongodb"

export const serverKinds: ReadonlyArray<ServerKind> = ["postgres", "redis", "mongodb"]

/** Environment variables that point the harness at an existing server, first match wins. */
export const envVars: Record<ServerKind, ReadonlyArray<string>> = {
  postgres: ["TENANTPOOL_PG_URL", "DATABASE_URL"],
  redis: ["TENANTPOOL_REDIS_URL", "REDIS_URL"],
  mongodb: ["TENANTPOOL_MONGODB_URL", "MONGODB_URL"]
}

export const productName: Record<ServerKind, string> = {
  postgres: "PostgreSQL",
  redis: "Redis",
  mongodb: "a MongoDB-wire server"
}

export const containerImage: Record<ServerKind, string> = {
  postgres: "postgres:15",
  redis: "redis:7",
  mongodb: "mongo:7"
}
