// Package tasks is davit's task DSL: named tasks with before/after hooks, a
// variable store with lazy and secret values, and an Executor that runs a
// task graph against a fleet of hosts.
//
// It is the layer both kinds of recipes share. Go recipes call it directly;
// the Deployfile loader (tasks/deployfile) translates Starlark into the same
// calls. Nothing here knows about Starlark, so the semantics of hooks,
// run-once invocation, host filtering and error reporting live in one place.
//
// The executor is driven by the CLI:
//
//	ex := &tasks.Executor{Registry: reg, Vars: vars, Hosts: hosts, Pool: pool, Local: local.New(""), Sink: sink}
//	err := ex.Invoke(ctx, "deploy")
//
// A task body receives a *Context; Context.On runs a function on many hosts
// through a runner strategy and hands each call a *HostContext, the handle
// that runs commands and moves files on that host.
package tasks
