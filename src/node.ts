#!/usr/bin/env node
/** The single process entry: `node dist/node.js <command> ...` or `node dist/node.js --role=<role> ...`. */
import { main } from "./cli/Main.js"

main(process.argv.slice(2))
