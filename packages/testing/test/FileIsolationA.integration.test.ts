// One of two test files that prove per-file isolation on the shared servers (see fileIsolation.ts).
import { describe } from "@effect/vitest"
import { claimsOwnDatabases } from "./fileIsolation.ts"

describe("per-file isolation (A)", () => claimsOwnDatabases("file_a"))
