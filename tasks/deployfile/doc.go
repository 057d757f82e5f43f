// Package deployfile loads a Deployfile: a Starlark program whose builtins
// (set, server, role, stage, task, before, after, on, …) translate into the
// tasks DSL. The README's "The Deployfile" section is the language reference.
//
// Loading has two phases, as in Tilt and skycfg. The load phase runs the
// Deployfile (and the files it loads) once, on one thread; builtins only
// record variables, servers, stages, tasks and hooks, and every global is
// then frozen. Builtins that act on servers (on, run_locally, ask, invoke)
// are refused in this phase, so loading a Deployfile never touches a host.
// The run phase starts when the executor invokes a task: each task body
// runs on a fresh starlark.Thread, and on() gives every host its own thread
// with the host's handle, because a starlark.Thread must never be shared
// between goroutines. Only frozen values, or values converted to Go and
// back, cross from one thread to another.
//
// Go recipes add builtins without importing Starlark: they describe them
// as tasks.Builtin values (tasks.BuiltinProvider), and recipebuiltins.go
// binds, checks and converts the arguments, checks the phase, and converts
// the result, so this stays the only package that imports go.starlark.net.
//
// load("git+…//FILE@REF") reads a recipe shared from a git repository,
// resolved and pinned in the Deployfile's lock file by remoterecipe
// (remote.go); loads inside it stay in that repository at that commit.
package deployfile
