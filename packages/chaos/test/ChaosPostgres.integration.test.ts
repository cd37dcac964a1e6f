// The chaos suite's CI subset on PostgreSQL (a private durable server behind Toxiproxy): see fixtures/matrix.ts.
import { matrix } from "./fixtures/matrix.ts"

matrix("postgres", {})
