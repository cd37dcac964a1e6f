// Where the local server binaries live: PATH first, then the places Debian packages and services-install.sh put
// them. Each finder reports what it looked at, so "not found" errors can say so.
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

export interface Found<A> {
  readonly value: A | undefined
  readonly searched: ReadonlyArray<string>
}

export interface PgBinaries {
  readonly dir: string
  readonly postgres: string
  readonly initdb: string
}

const isExecutable = (file: string): boolean => {
  try {
    fs.accessSync(file, fs.constants.X_OK)
    return fs.statSync(file).isFile()
  } catch {
    return false
  }
}

const pathDirs = (): Array<string> => (process.env["PATH"] ?? "").split(path.delimiter).filter((dir) => dir.length > 0)

const versionOrder = (a: string, b: string): number => {
  const va = Number.parseFloat(path.basename(path.dirname(a)))
  const vb = Number.parseFloat(path.basename(path.dirname(b)))
  return (Number.isNaN(vb) ? 0 : vb) - (Number.isNaN(va) ? 0 : va)
}

/** `postgres` and `initdb` from one directory: PATH, `/usr/lib/postgresql/<newest>/bin`, `/usr/local/pgsql/bin`. */
export const findPostgres = (): Found<PgBinaries> => {
  const debian = (() => {
    try {
      return fs
        .readdirSync("/usr/lib/postgresql")
        .map((version) => path.join("/usr/lib/postgresql", version, "bin"))
        .sort(versionOrder)
    } catch {
      return []
    }
  })()
  const dirs = [...pathDirs(), ...debian, "/usr/local/pgsql/bin"]
  for (const dir of dirs) {
    const postgres = path.join(dir, "postgres")
    const initdb = path.join(dir, "initdb")
    if (isExecutable(postgres) && isExecutable(initdb)) return { value: { dir, postgres, initdb }, searched: dirs }
  }
  return { value: undefined, searched: ["PATH", "/usr/lib/postgresql/*/bin", "/usr/local/pgsql/bin"] }
}

const findInPath = (name: string, extra: ReadonlyArray<string>): Found<string> => {
  const candidates = [...extra, ...pathDirs().map((dir) => path.join(dir, name))]
  const value = candidates.find(isExecutable)
  return { value, searched: [...extra, `${name} on PATH`] }
}

export const findRedis = (): Found<string> => findInPath("redis-server", [])

/** Where `npm run services:install` builds FerretDB. */
export const ferretDbCachePath = (): string => path.join(os.homedir(), ".cache", "tenantpool", "bin", "ferretdb")

export const findFerretDb = (): Found<string> => findInPath("ferretdb", [ferretDbCachePath()])

/** Where `scripts/toxiproxy-install.sh` (run by `npm run services:install`) builds Toxiproxy's server. */
export const toxiproxyCachePath = (): string =>
  path.join(os.homedir(), ".cache", "tenantpool", "bin", "toxiproxy-server")

export const findToxiproxy = (): Found<string> => findInPath("toxiproxy-server", [toxiproxyCachePath()])
