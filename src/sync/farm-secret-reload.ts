import { FarmSecretError } from '../errors.js'
import type { FarmKey } from './farm-keys.js'
import { loadFarmSecrets } from './farm-secret.js'

/** Which secret sends and which are accepted (key ids only: public, in every packet). */
export interface FarmSecretIds { sending: number; accepted: number[] }

/**
 * What a SIGHUP found in the --sync-secret-file files: the same secrets (nothing to do), other
 * ones (to hand to every consumer), or a file refused (the secrets held stay).
 */
export type FarmSecretReload =
  | { result: 'unchanged' }
  | { result: 'changed'; keys: FarmKey[]; before: FarmSecretIds; after: FarmSecretIds }
  | { result: 'refused'; error: FarmSecretError }

/**
 * The farm secrets as configured: the paths are fixed at start (flags, variables, YAML are not
 * read again), their contents are read again at each SIGHUP with the start's checks
 * (farm-secret.ts: mode, size, entropy, the first file must hold a secret, a later one may be
 * empty). A change-over is then three edits of the files, each followed by a SIGHUP on every
 * node (docs/operations.md "Changing the farm secret").
 */
export class FarmSecretFiles {
  #keys: FarmKey[]

  constructor (readonly files: readonly string[], keys: FarmKey[], private readonly load: (files: string[]) => FarmKey[] = loadFarmSecrets) {
    this.#keys = keys
  }

  /** The secrets held, the sending one first. */
  get keys (): FarmKey[] { return this.#keys }

  reload (): FarmSecretReload {
    let keys: FarmKey[]
    try {
      keys = this.load([...this.files])
    } catch (err) {
      if (err instanceof FarmSecretError) return { result: 'refused', error: err }
      throw err
    }
    if (sameFarmKeys(keys, this.#keys)) return { result: 'unchanged' }
    const before = farmSecretIds(this.#keys)
    this.#keys = keys
    return { result: 'changed', keys, before, after: farmSecretIds(keys) }
  }
}

/** Same secrets in the same order (the first sends, so the order matters). */
export function sameFarmKeys (a: readonly FarmKey[], b: readonly FarmKey[]): boolean {
  return a.length === b.length && a.every((key, i) => key.id === b[i]?.id && key.secret.equals(b[i].secret))
}

export function farmSecretIds (keys: readonly FarmKey[]): FarmSecretIds {
  return { sending: keys[0]?.id ?? -1, accepted: keys.map((k) => k.id) }
}
