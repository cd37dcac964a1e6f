/**
 * The suite: every workload `npm run bench` runs, in order, with the servers each needs. Each runs in a process of
 * its own (fresh heap, JIT and metric registry), loaded only there.
 *
 * @internal
 */
import type { Workload } from "../internal/suite.ts"

/** @internal */
export const workloads: ReadonlyArray<Workload> = [
  {
    name: "redis-get",
    description: "Redis GET at 1, 50, 500 in flight: guard vs raw ioredis (plain and from Effect), ±auto-pipelining",
    servers: ["redis"],
    load: () => import("./redisGet.ts").then((m) => m.run)
  },
  {
    name: "pg-pk",
    description: "PostgreSQL primary-key lookup at 10, 100 in flight: guard vs raw sql-pg, multiplexed and exclusive",
    servers: ["postgres"],
    load: () => import("./pgPk.ts").then((m) => m.run)
  },
  {
    name: "mongodb-findone",
    description: "MongoDB findOne by _id at 10, 100 in flight: guard vs the raw driver with the same pool",
    servers: ["mongodb"],
    load: () => import("./mongoFindOne.ts").then((m) => m.run)
  },
  {
    name: "projects",
    description: "Redis GET through the guard over 1, 100, 1,000, 10,000 projects on one target",
    servers: ["redis"],
    load: () => import("./projects.ts").then((m) => m.run)
  },
  {
    name: "first-call",
    description: "a project's first call over a warm call, per engine: lookup, runtime, binding",
    servers: ["redis", "postgres", "mongodb"],
    load: () => import("./firstCall.ts").then((m) => m.run)
  },
  {
    name: "guard-waiters",
    description: "guard cost per call with 0, 1,000, 10,000 callers of another project waiting",
    servers: [],
    load: () => import("./waiters.ts").then((m) => m.run)
  },
  {
    name: "metrics",
    description: "/metrics size and render time with 10,000 active projects, project label on and off",
    servers: [],
    load: () => import("./metrics.ts").then((m) => m.run)
  },
  {
    name: "pooling",
    description: "pooled (guard, spec) vs connect-per-request latency per engine, against the spec's 40 % claim",
    servers: ["redis", "postgres", "mongodb"],
    load: () => import("./connectPerRequest.ts").then((m) => m.run)
  },
  {
    name: "idle",
    description: "heap per registered idle project at 100,000, live runtimes and timers while idle",
    servers: [],
    execArgv: ["--expose-gc"],
    load: () => import("./idle.ts").then((m) => m.run)
  },
  {
    name: "pg-tiers",
    description: "PostgreSQL tier limits on the server: slow statements of a FREE project, PRO p99 under a FREE flood",
    servers: ["postgres"],
    load: () => import("./pgTiers.ts").then((m) => m.run)
  }
]
