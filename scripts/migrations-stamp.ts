/**
 * `npm run migrations:stamp`: writes each migration's stamp, the last two lines psql runs to record the file in
 * the migrator's history (see migrations/psql/record.sql):
 *
 *   \set tenantpool_migration '<file> <sha256>'
 *   \ir psql/record.sql
 *
 * Run it after writing or editing a migration that has not been applied anywhere yet; the migrator (and the tests)
 * refuse a stale stamp. `--check` only reports stale or missing stamps, with exit code 1.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { checksum } from "../packages/pg/src/PgMigrations.ts"

const directory = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../migrations")
const check = process.argv.includes("--check")
const stampLine = /^\\set\s+tenantpool_migration\s+.*$/m
const recordLine = "\\ir psql/record.sql"

let stale = 0
for (const file of fs
  .readdirSync(directory)
  .filter((f) => /^\d+_.*\.sql$/.test(f))
  .sort()) {
  const full = path.join(directory, file)
  const text = fs.readFileSync(full, "utf8")
  const stamp = `\\set tenantpool_migration '${file} ${checksum(text)}'`
  const stamped = stampLine.test(text)
    ? text.replace(stampLine, stamp)
    : `${text.endsWith("\n") ? text : `${text}\n`}${stamp}\n${recordLine}\n`
  if (stamped === text) continue
  stale++
  if (check) {
    console.error(`${file}: stamp missing or stale (npm run migrations:stamp)`)
  } else {
    fs.writeFileSync(full, stamped)
    console.log(`${file}: stamped ${checksum(text).slice(0, 12)}…`)
  }
}
if (check && stale > 0) process.exit(1)
