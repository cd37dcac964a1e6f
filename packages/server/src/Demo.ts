/**
 * The demo's projects: one per tier, all on the local servers (projects share the Redis server through key
 * prefixes; each has its own MongoDB database).
 *
 * @since 0.1.0
 */
import type { ProjectInput } from "@tenantpool/core/Registry"

/**
 * The demo projects for the given server URLs.
 *
 * @category constructors
 * @since 0.1.0
 */
export const demoProjects = (urls: {
  readonly postgres: string
  readonly redis: string
  readonly mongodb: string
}): ReadonlyArray<ProjectInput> => {
  const tiers = [
    ["acme", "FREE"],
    ["globex", "STARTER"],
    ["initech", "PRO"],
    ["umbrella", "ENTERPRISE"]
  ] as const
  return tiers.map(([id, tier]) => ({ id, tier, redis: urls.redis, mongodb: withDatabase(urls.mongodb, `demo_${id}`) }))
}

const withDatabase = (url: string, database: string): string => {
  const u = new URL(url)
  u.pathname = `/${database}`
  return u.toString()
}
