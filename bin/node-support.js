// Which Node.js versions tlsfleet runs on: 22 from 22.19, and 24 or later. Plain JavaScript
// with no imports, so that any Node.js can load it: the launcher and scripts/supported-node.mjs
// both ask it before anything else is loaded.

/** Whether Node.js `version` ("24.21.0", as in process.versions.node) is supported. */
export function isSupportedNode (version) {
  const [major, minor] = version.split('.').map(Number)
  return major > 22 || (major === 22 && minor >= 19)
}

export const SUPPORTED_NODE = '22 (22.19 or later) or 24'
