import { isScalar, parseDocument, visit } from 'yaml'

/**
 * Parse a node's YAML config as `yaml`'s parse() does, with one difference that keeps the file
 * to the rules flags and TLSFLEET_* variables follow: a number is handed on as the text written
 * (`0x10`, `1e3`, `+12`, `.inf`), not as the value YAML reads it as. The option's own parser then
 * applies the decimal-only rule of flags and env vars, and a refusal quotes what the operator
 * wrote rather than 16 or 1000.
 *
 * Syntax errors are thrown as parse() throws them (a YAMLParseError with its line position), and
 * so are warnings (an unresolved tag).
 */
export function parseConfigYaml (text: string): unknown {
  const doc = parseDocument(text)
  const error = doc.errors[0]
  if (error !== undefined) throw error
  // parse() would hand a warning to process.emitWarning, which prints a raw YAMLWarning on
  // stderr and goes on with a value YAML could not read as tagged (`!!float 4` as text): refused.
  const warning = doc.warnings[0]
  if (warning !== undefined) throw new Error(`${warning.message.trimEnd()}\n(no YAML tags are needed in a tlsfleet config: write the value plainly, or quote it as text)`)
  visit(doc, {
    Scalar (_key, node) {
      if (isScalar(node) && typeof node.value === 'number') node.value = node.source ?? String(node.value)
    }
  })
  return doc.toJS()
}
