import type { Bench } from "./lib.js"
export const bench: Bench = { name: "jobs-list", description: "todo", run: async () => {} }
