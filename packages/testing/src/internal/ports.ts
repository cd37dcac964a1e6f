// Loopback ports: a free one from the kernel (bind port 0), or whether a preferred one is free.
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
