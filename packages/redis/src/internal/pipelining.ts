/**
 * Adaptive auto-pipelining on the shared connection.
 *
 * ioredis's auto-pipelining queues every command and writes the queue on the next turn of the event loop
 * (`setImmediate`), one batch at a time. Under load that turns 50 writes into one; with one command in flight it
 * only adds a turn of the event loop to every call (measured: about half the throughput of a direct write at one in
 * flight). So a command is written at once when the connection is idle — no reply awaited, no batch queued or on
 * its way — and joins the batch otherwise. Order is kept: a command goes out directly only when everything issued
 * before it has been written.
 *
 * This reads three fields ioredis keeps on the client (`_autoPipelines`, `_runningAutoPipelines`, `commandQueue`).
 * Should a later ioredis drop them, `supported` is false and every command is auto-pipelined as ioredis does by
 * itself (a test checks the fields on the installed version).
 *
 * @internal
 */
import type { Redis as IORedis } from "ioredis"

interface PipelineState {
  readonly _autoPipelines?: { readonly size: number }
  readonly _runningAutoPipelines?: { readonly size: number }
  readonly commandQueue?: { readonly length: number }
  readonly options: { enableAutoPipelining?: boolean }
}

/** Whether the installed ioredis exposes what `idle` reads. @internal */
export const supported = (conn: IORedis): boolean => {
  const c = conn as unknown as PipelineState
  return (
    c._autoPipelines instanceof Map &&
    c._runningAutoPipelines instanceof Set &&
    typeof c.commandQueue?.length === "number"
  )
}

/** No reply awaited and no batch queued or on its way: a command written now is next on the wire. @internal */
export const idle = (conn: IORedis): boolean => {
  const c = conn as unknown as PipelineState
  return c.commandQueue!.length === 0 && c._autoPipelines!.size === 0 && c._runningAutoPipelines!.size === 0
}

/**
 * Issues the commands `f` sends on an auto-pipelining connection: directly when the connection is idle, batched
 * otherwise. `f` must issue its commands synchronously (ioredis decides when a command is called).
 *
 * @internal
 */
export const issue = <A>(conn: IORedis, f: (conn: IORedis) => Promise<A>): Promise<A> => {
  if (!idle(conn)) return f(conn)
  const options = (conn as unknown as PipelineState).options
  options.enableAutoPipelining = false
  try {
    return f(conn)
  } finally {
    options.enableAutoPipelining = true
  }
}
