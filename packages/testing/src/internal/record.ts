// The record of a locally started server: `server.json` in the server's own directory. It holds everything needed
// to control the server from any process (the command to re-spawn it, the current pid, port, data directory), and
// is rewritten on every restart so that whoever stops it later signals the current process.
import * as fs from "node:fs"
import * as path from "node:path"
import type { ServerKind } from "./kinds.ts"
import type { CommandSpec } from "./process.ts"

/**
 * What the last-resort cleanup needs of any process the harness starts (servers, and the Toxiproxy daemon of
 * `Toxiproxy.ts`): its directory, command, pid and owner.
 */
export interface ProcessRecord extends CommandSpec {
  readonly kind: ServerKind | "toxiproxy"
  /** The process's directory: data, log, sockets and this record. */
  readonly dir: string
  readonly logFile: string
  /** The process (for PostgreSQL the postmaster); it leads its own process group. 0 while starting. */
  readonly pid: number
  /** The process whose exit removes this one; 0 for processes nobody owns (`services:start`). */
  readonly ownerPid: number
  /** Kept on disk when the process is closed (`services:start` data under `.tenantpool/`). */
  readonly persistent: boolean
}

export interface LocalRecord extends ProcessRecord {
  readonly kind: ServerKind
  readonly dataDir: string
  readonly host: string
  readonly port: number
  readonly url: string
  readonly version: string
}

/** Prefix of the throwaway server directories under `os.tmpdir()`; stale ones are reaped by it. */
export const TMP_PREFIX = "tenantpool-"

export const recordPath = (dir: string): string => path.join(dir, "server.json")

/** A server's record by default; the cleanup reads any process's (`readRecord<ProcessRecord>`). */
export const readRecord = <R extends ProcessRecord = LocalRecord>(dir: string): R | undefined => {
  try {
    return JSON.parse(fs.readFileSync(recordPath(dir), "utf8")) as R
  } catch {
    return undefined
  }
}

/** Written to a temporary file and renamed, so a concurrent reader never sees half a record. */
export const writeRecord = <R extends ProcessRecord>(record: R): void => {
  const file = recordPath(record.dir)
  const temp = `${file}.${process.pid}.tmp`
  fs.writeFileSync(temp, `${JSON.stringify(record, null, 2)}\n`)
  fs.renameSync(temp, file)
}
