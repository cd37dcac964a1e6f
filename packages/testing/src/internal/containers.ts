// The testcontainers fallback: when no URL is configured and no local binaries exist but a Docker engine answers,
// run postgres:15, redis:7 and mongo:7. testcontainers' reaper removes them if this process dies.
import { GenericContainer, getContainerRuntimeClient, type StartedTestContainer, Wait } from "testcontainers"
import { probe } from "./drivers.ts"
import { containerImage, type ServerKind } from "./kinds.ts"

export interface StartedContainer {
  readonly url: string
  readonly host: string
  readonly port: number
  readonly version: string
  readonly stop: () => Promise<void>
}

/** Whether a container engine answers, and why not when it does not. */
export const dockerAvailable = async (): Promise<{ readonly ok: boolean; readonly reason: string }> => {
  try {
    await getContainerRuntimeClient()
    return { ok: true, reason: "" }
  } catch (error) {
    return { ok: false, reason: error instanceof Error ? error.message : String(error) }
  }
}

const internalPort: Record<ServerKind, number> = { postgres: 5432, redis: 6379, mongodb: 27017 }

const definition = (kind: ServerKind): GenericContainer => {
  const container = new GenericContainer(containerImage[kind]).withExposedPorts(internalPort[kind])
  switch (kind) {
    case "postgres":
      return container
        .withEnvironment({ POSTGRES_HOST_AUTH_METHOD: "trust" })
        .withCommand([
          "postgres",
          "-c",
          "max_connections=200",
          "-c",
          "fsync=off",
          "-c",
          "synchronous_commit=off",
          "-c",
          "full_page_writes=off"
        ])
        .withWaitStrategy(Wait.forLogMessage(/database system is ready to accept connections/, 2))
    case "redis":
      return container
        .withCommand(["redis-server", "--save", "", "--appendonly", "no", "--databases", "64"])
        .withWaitStrategy(Wait.forLogMessage(/Ready to accept connections/))
    case "mongodb":
      return container.withWaitStrategy(Wait.forLogMessage(/Waiting for connections/))
  }
}

const urlFor = (kind: ServerKind, host: string, port: number): string => {
  switch (kind) {
    case "postgres":
      return `postgres://postgres@${host}:${port}/postgres`
    case "redis":
      return `redis://${host}:${port}`
    case "mongodb":
      return `mongodb://${host}:${port}/?directConnection=true`
  }
}

export const startContainer = async (kind: ServerKind, readyTimeoutMs: number): Promise<StartedContainer> => {
  const started: StartedTestContainer = await definition(kind).withStartupTimeout(readyTimeoutMs).start()
  const host = started.getHost()
  const port = started.getMappedPort(internalPort[kind])
  const url = urlFor(kind, host, port)
  const deadline = Date.now() + readyTimeoutMs
  for (;;) {
    try {
      const version = await probe(kind, url, 2_000)
      return { url, host, port, version, stop: () => started.stop().then(() => undefined) }
    } catch (error) {
      if (Date.now() >= deadline) {
        await started.stop().catch(() => undefined)
        throw error
      }
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
  }
}
