// Loopback ports: a free one from the kernel (bind port 0), or whether a preferred one is free.
import * as fs from "node:fs"
import * as net from "node:net"

export const LOOPBACK = "127.0.0.1"

const listenOnce = (port: number): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = net.createServer()
    server.unref()
    server.once("error", reject)
    server.listen({ port, host: LOOPBACK, exclusive: true }, () => {
      const address = server.address()
      const bound = typeof address === "object" && address !== null ? address.port : port
      server.close(() => resolve(bound))
    })
  })

/** A port the kernel just handed out on 127.0.0.1; the server binds it right after, and retries on a collision. */
export const freePort = (): Promise<number> => listenOnce(0)

export const isPortFree = (port: number): Promise<boolean> =>
  listenOnce(port).then(
    () => true,
    () => false
  )

// The kernel's ephemeral range (source ports of outgoing connections); Linux's default when /proc is unreadable.
const ephemeralRange = (): readonly [number, number] => {
  try {
    const [low, high] = fs.readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)
    return [Number(low), Number(high)]
  } catch {
    return [32768, 60999]
  }
}

/**
 * A free loopback port outside the ephemeral range, for listeners that go down and come back (Toxiproxy's proxies):
 * while such a listener is down, a port from the ephemeral range can be handed to an outgoing connection as its
 * source port, and the listener then cannot come back (Toxiproxy's README gives the same advice).
 */
export const freeStablePort = async (): Promise<number> => {
  const [low, high] = ephemeralRange()
  // Below the ephemeral range when it leaves room (Linux: 10000–32767), else above it.
  const [from, to] = low - 10_000 >= 2_000 ? [10_000, low - 1] : [high + 1, 65_535]
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = from + Math.floor(Math.random() * (to - from + 1))
    if (await isPortFree(port)) return port
  }
  return freePort()
}
