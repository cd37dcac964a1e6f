/**
 * Connection strings at rest: AES-256-GCM under keys named by id (the format of `platform.databases`, see the
 * package README), and the key ring they come from.
 *
 * A ciphertext is `AES-256-GCM(key, nonce, aad = "<project_id>/<database_type>")(utf8 connection string)` followed
 * by the 16-byte tag; the nonce is 12 random bytes per encryption. The AAD binds a ciphertext to its row, so a
 * ciphertext copied into another project's row does not decrypt. Plaintext buffers are zeroed after use; the
 * plaintext leaves this module only as a `Redacted`.
 *
 * @since 0.1.0
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto"
import * as Redacted from "effect/Redacted"
import { InvalidConfig } from "@tenantpool/core/Errors"

const tagLength = 16
const nonceLength = 12
const keyIdPattern = /^[A-Za-z0-9._:-]{1,128}$/

/** The keys of a process: the one new ciphertexts use, and every key old ones may name. */
export interface KeyRing {
  readonly primary: string
  readonly keys: ReadonlyMap<string, Redacted.Redacted<Uint8Array>>
}

/** Why a key ring could not be read; never quotes a key. */
export class KeyRingError extends Error {
  readonly field: string
  constructor(field: string, reason: string) {
    super(reason)
    this.field = field
  }
}

/**
 * Reads `primary-id:base64key[,other-id:base64key…]` (the first key encrypts; all of them decrypt). Keys are 32
 * bytes, in standard or URL-safe base64.
 */
export const parseKeyRing = (input: Redacted.Redacted<string>): KeyRing => {
  const text = Redacted.value(input).trim()
  if (text.length === 0) throw new KeyRingError("keys", "is empty")
  const keys = new Map<string, Redacted.Redacted<Uint8Array>>()
  let primary: string | undefined
  for (const part of text.split(",")) {
    const entry = part.trim()
    const colon = entry.indexOf(":")
    if (colon <= 0) throw new KeyRingError("keys", "each key must be written <id>:<base64 of 32 bytes>")
    const id = entry.slice(0, colon)
    if (!keyIdPattern.test(id)) throw new KeyRingError("keys", `key id "${id.slice(0, 40)}" must match ${keyIdPattern}`)
    if (keys.has(id)) throw new KeyRingError("keys", `key id "${id}" is given twice`)
    const bytes = Buffer.from(entry.slice(colon + 1).trim(), "base64")
    if (bytes.length !== 32) throw new KeyRingError("keys", `key "${id}" must be 32 bytes (AES-256), base64-encoded`)
    keys.set(id, Redacted.make(new Uint8Array(bytes)))
    bytes.fill(0)
    primary ??= id
  }
  return { primary: primary!, keys }
}

/**
 * A fresh random key in the ring format, for set-up scripts and tests. Throws `InvalidConfig` (by design: a
 * synchronous constructor) for an id that is not a key id, without repeating it.
 */
export const generateKey = (id: string): Redacted.Redacted<string> => {
  if (typeof id !== "string" || !keyIdPattern.test(id)) {
    throw new InvalidConfig({ field: "keys", reason: `a key id must match ${keyIdPattern}` })
  }
  return Redacted.make(`${id}:${randomBytes(32).toString("base64")}`)
}

const aad = (projectId: string, engine: string) => Buffer.from(`${projectId}/${engine}`, "utf8")

/** Encrypts a connection string under the primary key. */
export const encrypt = (
  ring: KeyRing,
  projectId: string,
  engine: string,
  plaintext: Redacted.Redacted<string>
): { readonly ciphertext: Uint8Array; readonly nonce: Uint8Array; readonly keyId: string } => {
  const key = ring.keys.get(ring.primary)!
  const nonce = randomBytes(nonceLength)
  const cipher = createCipheriv("aes-256-gcm", Redacted.value(key), nonce, { authTagLength: tagLength })
  cipher.setAAD(aad(projectId, engine))
  const input = Buffer.from(Redacted.value(plaintext), "utf8")
  const body = Buffer.concat([cipher.update(input), cipher.final()])
  input.fill(0)
  return { ciphertext: new Uint8Array(Buffer.concat([body, cipher.getAuthTag()])), nonce, keyId: ring.primary }
}

/** Why a ciphertext did not decrypt (never includes key material or plaintext). */
export type DecryptFailure = "unknown-key" | "malformed" | "authentication"

/** Decrypts a connection string, or says why it cannot. */
export const decrypt = (
  ring: KeyRing,
  projectId: string,
  engine: string,
  row: { readonly ciphertext: Uint8Array; readonly nonce: Uint8Array; readonly keyId: string }
): Redacted.Redacted<string> | DecryptFailure => {
  const key = ring.keys.get(row.keyId)
  if (key === undefined) return "unknown-key"
  if (row.nonce.length !== nonceLength || row.ciphertext.length <= tagLength) return "malformed"
  try {
    const decipher = createDecipheriv("aes-256-gcm", Redacted.value(key), row.nonce, { authTagLength: tagLength })
    decipher.setAAD(aad(projectId, engine))
    decipher.setAuthTag(row.ciphertext.subarray(row.ciphertext.length - tagLength))
    const plain = Buffer.concat([
      decipher.update(row.ciphertext.subarray(0, row.ciphertext.length - tagLength)),
      decipher.final()
    ])
    const text = plain.toString("utf8")
    plain.fill(0)
    return Redacted.make(text)
  } catch {
    return "authentication"
  }
}
