/** Whole numbers as an operator types them: decimal digits only. */
const WHOLE = /^\d+$/
/** Decimal numbers as an operator types them: "5", "0.5". */
const DECIMAL = /^\d+(\.\d+)?$/

/**
 * A numeric command-line value, read strictly: `Number()` alone takes "" and " " for 0, "0x10"
 * for 16 and "1e3" for 1000, so `--duration ''` would have meant "until Ctrl-C". Returns the
 * number, or the sentence that refuses it (the caller throws its own error class with it).
 */
export function numberArgument (name: string, text: string, min: number, max: number, kind: 'integer' | 'decimal' = 'integer'): number | string {
  const n = (kind === 'integer' ? WHOLE : DECIMAL).test(text) ? Number(text) : Number.NaN
  if (Number.isFinite(n) && n >= min && n <= max) return n
  return `${name}: ${JSON.stringify(text)} is not ${kind === 'integer' ? 'an integer' : 'a number'} from ${min} to ${max}`
}
