// The chaos suite's CI subset on Redis (a private durable server behind Toxiproxy): see fixtures/matrix.ts.
import { matrix } from "./fixtures/matrix.ts"

matrix("redis", {})
