#!/usr/bin/env node
// Thin launcher: the CLI is compiled from src/cli/main.ts into dist/.
import '../dist/src/cli/main.js'
