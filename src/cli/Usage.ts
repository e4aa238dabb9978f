/** The general usage, printed by `--help` and after an unknown command. */
export const general = `Usage: troupe <command> [options]
       troupe --role=<role> [options]

Commands (talk to a server; --server URL, default $TROUPE_SERVER or tcp://127.0.0.1:7878):
  submit   submit a command as a job; prints the job id
  status   show jobs (the most recent 100 when no ids are given)
  wait     wait for jobs to finish; exit 0 only if all completed with exit code 0
  kill     kill jobs
  resend   run finished jobs again (--on NAME: on another remote)
  logs     print a job's output
  events   print job state transitions as they happen
  queue    show queues
  clean    delete old finished jobs

Commands of an exec server (--server URL, default $TROUPE_EXEC_SERVER or tcp://127.0.0.1:7880):
  exec     run a command remotely; exit with its exit code
  put      send a local file to the server (resumable, checksummed)
  get      fetch a file from the server

Commands of a Net Queue node (--server framed://HOST:PORT, default
$TROUPE_QUEUE_SERVER or framed://127.0.0.1:7979):
  enqueue       put items into a queue node, as a producer
  dequeue       take items from a queue node, as a consumer; one per line
  queue-status  show a queue node's children, their load and state

Commands of a module server (--server URL, default $TROUPE_MODULE_SERVER or tcp://127.0.0.1:7881):
  com          call a function of a module: com MODULE FN [ARGS...] (JSON args)
  modules      show the modules: status, worker, generation, restarts, calls
  reload       reload a module's code, or (without a name) the config
  module-help  show the server's help, or a module's

Commands without a server:
  run      run one command on the embedded runtime and exit with its exit code

Roles:
  --role=local   the job server (owns the job database, serves clients)
  --role=remote  runs the jobs a local server sends it (no database)
  --role=exec    the remote command server (exec, files, transfers)
  --role=queue   a Net Queue node in a tree (framed://, the original protocol)
  --role=module  the module server: user modules in supervised worker processes

Run "troupe help <command>" or "troupe <command> --help" for details.
Durations are a number and a unit: 500ms, 90s, 5m, 2h, 7d.
Endpoint URLs: tcp://host:port, unix:///path.sock, framed://host:port, folder:///path.
Every command takes --secret-file FILE (or $TROUPE_SECRET_FILE) for servers that
require the shared-secret handshake.
`

/** Per-command usage, keyed by command name. */
export const commands: Readonly<Record<string, string>> = {
  submit: `Usage: troupe submit [options] -- CMD [ARGS...]

Submit a command as a job and print its id (only the id) on stdout.
With one word after "--" the word is a shell string ("sleep 1; echo done");
with several they are the argv. The job runs in the current directory.

Options:
  --server URL      the server (default $TROUPE_SERVER or tcp://127.0.0.1:7878)
  --name NAME       a name for the job
  --queue Q         the queue (default "default")
  --cores N         cores the job needs
  --time DURATION   time limit; the job ends as "timeout" after it (e.g. 90s)
  --after ID,ID     run only after these jobs completed
  --retries N       retry a failed attempt up to N times
  --key KEY         idempotency key: resubmitting the same key returns the same job
  --on NAME         run on this remote (the server's --remote NAME=URL)
  --in LOCAL[:REMOTE]  ship a file with the job into its folder (repeatable)
  --out GLOB        collect output files matching GLOB when the job ends (repeatable);
                    a remote job's outputs are fetched into the job's data folder
  --wait            wait for the job and exit with its exit code:
                    killed -> 137, timeout -> 124, lost or failed without a code -> 1
`,
  status: `Usage: troupe status [options] [ID...]

Show jobs as a table (id, name, state, exit, queue, submitted, runtime).
Without ids, the most recent 100 jobs (see --limit).

Options:
  --server URL    the server
  --json          print a JSON array of job objects instead of a table
  --state S       only jobs in this state (repeatable)
  --queue Q       only jobs in this queue
  --limit N       how many recent jobs to show without ids (default 100)
`,
  wait: `Usage: troupe wait [options] ID...

Wait until every job has finished. On a terminal, shows "n/m done" on stderr.
Exit codes: 0 every job completed with exit code 0; 1 some job did not;
3 the timeout passed first; 2 usage error or server unreachable.

Options:
  --server URL         the server
  --timeout DURATION   give up after this long (exit 3)
`,
  kill: `Usage: troupe kill [options] ID...

Kill jobs that have not finished; prints the ids that were killed.

Options:
  --server URL   the server
`,
  resend: `Usage: troupe resend [options] ID...

Run finished jobs again, each as a new attempt with a fresh retry budget, where
they ran or on the remote --on names. Prints the ids that were requeued. A job
that has not finished is refused: kill it first. \`troupe status\` and the
attempt history show where each attempt ran.

Options:
  --server URL   the server
  --on NAME      send the jobs to this remote (the server's --remote NAME=URL)
  --wait         wait for them; exit 0 only if all completed with exit code 0
`,
  logs: `Usage: troupe logs [options] ID

Print a job's captured stdout (or stderr with --stderr) on stdout.

Options:
  --server URL      the server
  -f, --follow      keep printing until the job ends
  --stderr          the job's stderr instead of its stdout
`,
  events: `Usage: troupe events [options] [ID...]

Print job state transitions as the server commits them, one line each
(time, job, queue, from -> to, exit code, reason), until interrupted. With
ids, only those jobs', and it exits once each has ended: 0 if all completed
with exit code 0, 1 otherwise.

Options:
  --server URL   the server
  --json         one JSON object per line (id, queue, from, to, at, attempt,
                 exitCode, reason, seq)
`,
  queue: `Usage: troupe queue [options]

Show every queue: concurrency, capacity, and held, queued and running jobs.

Options:
  --server URL   the server
  --json         print JSON instead of a table
`,
  clean: `Usage: troupe clean [options]

Delete finished jobs (and their output) older than a cut-off; prints how many.

Options:
  --server URL             the server
  --older-than DURATION    age cut-off (default 7d; 0s removes every finished job)
  --state S                only jobs in this state (repeatable)
`,
  run: `Usage: troupe run [options] -- CMD [ARGS...]

Run one command on the embedded runtime (no server), stream its stdout and
stderr here, and exit with its exit code (killed -> 137, timeout -> 124).

Options:
  --db PATH         the job database (default .troupe/troupe.db)
  --data-dir DIR    where job output is kept (default next to the database)
  --time DURATION   time limit for the command
  --name NAME       a name for the job
`,
  local: `Usage: troupe --role=local [options]

The job server: owns the job database and serves the Jobs API on every
--listen endpoint. SIGINT/SIGTERM stop it gracefully: it stops accepting
work, gives running jobs the grace period, then kills them and records it.

Options:
  --db PATH          the job database (default .troupe/troupe.db)
  --data-dir DIR     where job output is kept (default next to the database)
  --listen URL       endpoint to serve (repeatable; default tcp://127.0.0.1:7878):
                     tcp://host:port, unix:///path.sock, framed://host:port,
                     folder:///path
  --cores N          cores available to jobs (default: this machine's)
  --grace DURATION   shutdown grace period for running jobs (default 10s)
  --secret-file FILE a shared secret clients must prove they hold (default
                     $TROUPE_SECRET_FILE); required to listen beyond loopback
  --insecure         listen beyond loopback without a secret (private networks)
  --remote NAME=URL  a remote (--role=remote) jobs can be sent to with --on NAME
                     (repeatable; any transport URL)
  --remote-heartbeat DURATION   how often remotes are asked isalive (default 2s)
  --remote-timeout DURATION     a silent remote loses its jobs after this (default 10s)
`,
  remote: `Usage: troupe --role=remote --listen URL [options]

Runs the jobs a local server sends it (submit --on NAME), with the same
executor as the local role, and sends their state, output files, stdout and
stderr back. It keeps no database: each attempt runs in its own folder under
--workdir, and answers wait in its spool until the local server takes them.

Options:
  --listen URL       where the local server reaches it (exactly one; any
                     transport: tcp://, unix://, framed://, folder://)
  --workdir DIR      where jobs run (default .troupe-remote)
  --cores N          cores available to jobs (default: this machine's)
  --keep DURATION    how long an ended attempt's folder stays once its end and
                     files are queued for the local server (default 7d;
                     "forever" keeps them all)
  --secret-file FILE the shared secret (default $TROUPE_SECRET_FILE)
  --insecure         listen beyond loopback without a secret
`,
  exec: `Usage: troupe exec [options] -- CMD [ARGS...]

Run a command on an exec server and exit with its exit code (a signal gives
128 + its number; a command that cannot start gives 127). With one word after
"--" the word is a shell string; with several they are the argv.

Options:
  --server URL        the exec server (default $TROUPE_EXEC_SERVER or tcp://127.0.0.1:7880)
  --stream            print output as it arrives (default: when the command ends)
  --cwd DIR           working directory on the server (confined to its root)
  --env NAME=VALUE    an environment variable for the command (repeatable)
  --timeout DURATION  kill the command and fail after this long
`,
  put: `Usage: troupe put [options] LOCAL REMOTE

Send a local file to an exec server in chunks; the server checks its SHA-256
before it puts it in place. A broken connection is resumed where it stopped.

Options:
  --server URL   the exec server
`,
  get: `Usage: troupe get [options] REMOTE LOCAL

Fetch a file from an exec server (LOCAL ending in / keeps the remote name).

Options:
  --server URL   the exec server
`,
  "exec-role": `Usage: troupe --role=exec [options]

The remote command server: runs commands for clients (output streamed, stdin,
signals), file commands and transfers. Every path is confined to --root.

Options:
  --listen URL        endpoint to serve (repeatable; default tcp://127.0.0.1:7880)
  --root DIR          the directory file commands and cwds are confined to
                      (default: the working directory)
  --allow-close       let clients stop the server (closeServer)
  --secret-file FILE  a shared secret clients must prove they hold (default
                      $TROUPE_SECRET_FILE); required to listen beyond loopback
  --insecure          listen beyond loopback without a secret (private networks)
`
,
  enqueue: `Usage: troupe enqueue [options] ITEM...

Put items into a Net Queue node as a producer (STATUS producer=1). Exits 0
once the node holds them (a Troupe node acknowledges them; for an original
Net Queue server, once they are written). Items may not contain newlines.

Options:
  --server URL         the node, framed://HOST:PORT
  --timeout DURATION   how long the node may take to accept them (default 5s);
                       exit 3 after it (the node is full)
`,
  dequeue: `Usage: troupe dequeue [options]

Take items from a Net Queue node as a consumer and print each on its own
line. Items are acknowledged as they are printed; a Troupe node gives items
it sent but this command did not take to another consumer.

Options:
  --server URL         the node, framed://HOST:PORT
  --count N            how many items to take (default 1)
  --timeout DURATION   give up after this long (exit 3); default: wait
`,
  "queue-status": `Usage: troupe queue-status [options]

Show a Troupe queue node: its parent, policy and held items, and each child
with its role (producer or consumer), protocol (troupe or plain), state
(ready, full, window-full), load, items in flight and window.
(\`troupe status\` is the job server's command.)

Options:
  --server URL         the node, framed://HOST:PORT
  --json               print the report as JSON
  --timeout DURATION   how long to wait for the report (default 5s)
`,
  "queue-role": `Usage: troupe --role=queue --listen framed://HOST:PORT [options]

A Net Queue tree node: the server for its children and a client of its
parent. Items flow down: each item reaching the node goes to one ready
consumer child by the policy, or is held (for local get) when none is ready.
Speaks the original Net Queue protocol; Troupe peers add acknowledgements
(at-least-once). See docs/NETQUEUE.md.

Options:
  --listen URL            where children connect (default framed://127.0.0.1:7979)
  --parent URL            the parent node or Net Queue server
  --policy P              round-robin (default), least-loaded, random, weighted
  --window N              items in flight per child (default 1000)
  --capacity N            items the node holds (default 10000)
  --ping-interval DURATION  PING children and parent this often (default 5s)
  --ping-timeout DURATION   drop a peer with no PONG for this long (default 15s)
  --config FILE           a server config file (flags win)
  --insecure              listen beyond loopback (Net Queue has no authentication)
`
}

/** Usage of the module server's commands and role. */
const moduleCommands: Readonly<Record<string, string>> = {
  com: `Usage: troupe com [options] MODULE FN [ARGS...]

Call FN in MODULE on a module server and print what it returned: a string as
is, anything else as JSON. Each ARG is JSON when it parses as JSON (3, true,
null, [1,2], {"a":1}, '"quoted"'), otherwise a string. Exit 1 when the call
failed (the module's error and traceback are printed on stderr).

Options:
  --server URL   the module server (default $TROUPE_MODULE_SERVER or tcp://127.0.0.1:7881)
  --json         print the result as JSON, strings too
`,
  modules: `Usage: troupe modules [options] [PREFIX]

Show the modules whose names start with PREFIX: status (starting, ready,
restarting, failed, stopped), worker pid, generation (+1 per reload or
restart), restarts after crashes, concurrency, running and queued calls,
and the module file. A module that is not ready shows its last error.

Options:
  --server URL   the module server
  --json         print JSON instead of a table
`,
  reload: `Usage: troupe reload [options] [MODULE]

Reload MODULE's code: a new worker loads it while the old one serves; the
next calls go to the new one once it is ready. If the new code fails to
load, the old one keeps serving and the error is printed (exit 1).
Without MODULE, the server reads its config file again and applies it.

Options:
  --server URL   the module server
`,
  "module-help": `Usage: troupe module-help [options] [MODULE]

Print MODULE's help (its own, or generated from its functions), or without
MODULE the server's help: its modules and the protocols it speaks.

Options:
  --server URL   the module server
`,
  "module-role": `Usage: troupe --role=module --config FILE [options]

The module server: each module of the config runs in its own worker process,
supervised (restarted with backoff after a crash; after 3 crashes in 5 s it
stays down until its files change or it is reloaded). A module reloads when
its file or a local file it imports changes: the new code starts in a new
worker and takes the next calls once ready, while calls in flight finish on
the old one. The config file is watched too. See docs/MODULES.md.

Config: {"name": ["./path/to/module.js", "ExportName", "dispatchMethod" | null,
         {"concurrency": 1, "importTimeoutMs": 5000, "maxQueue": 10000, "watch": true}]}
(names starting with "_" are ignored; the options object is optional.)

Options:
  --config FILE         the JSON config of modules (required)
  --listen URL          endpoint for typed clients (repeatable; default
                        tcp://127.0.0.1:7881): tcp://, unix://, framed://, folder://
  --compat HOST:PORT    listener for the original line-protocol clients
                        (default 127.0.0.1:36577); "off" for none
  --direct-port PORT    port of the direct-route listener beside each tcp:// or
                        framed:// endpoint, for firewalls (default: an ephemeral
                        port); "off" for none: every call then goes through the server
  --log-dir DIR         per-module logs, JSON lines (default logs/ beside the config)
  --log-max-size SIZE   rotate a module's log past SIZE (default 10M)
  --log-files N         rotated logs kept per module (default 5)
  --secret-file FILE    a shared secret typed clients must prove they hold (default
                        $TROUPE_SECRET_FILE); required to listen beyond loopback
  --insecure            listen beyond loopback without a secret (private networks);
                        also allows --compat beyond loopback (it has no authentication)
`
}

/** The usage text for a command, or the general usage when it has none. */
export const of = (command: string | undefined): string =>
  command !== undefined && command in commands
    ? commands[command]!
    : command !== undefined && command in moduleCommands
    ? moduleCommands[command]!
    : general
