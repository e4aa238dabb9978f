import type { Bench } from "./lib.js"
export const bench: Bench = { name: "jobs-shell", description: "todo", run: async () => {} }
