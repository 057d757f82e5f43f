// Package capdeploy is davit's Capistrano-compatible deploy recipe: setup,
// check, lock, update, publish, finish, rollback, cleanup and releases,
// written in Go against the same task DSL a Deployfile uses. Every step is
// a task, so users hook before/after any of them exactly as they would in
// Capistrano.
//
// The recipe keeps Capistrano's server layout (deploy.Layout), so a fleet
// deployed by Capistrano can be taken over and rolled back to a release
// Capistrano made. What davit needs beyond that layout (the deploy lock and
// per-release marks) lives under DEPLOY_TO/.davit/.
//
// The property the recipe exists for is fleet-wide all-or-nothing: every
// host finishes deploy:updating before any host's current moves; a failure
// before publishing removes the new release everywhere; a failure while
// publishing moves the hosts that switched back to the release they had.
//
// A dry run (tasks.Context.DryRun) walks the same flow, and every command
// is only reported; what a command would have told is a placeholder that
// nothing parses as data: the strategy's Resolve returns a revision marked
// scm.Revision.Placeholder ("<revision of branch main>") without running
// anything, every host's state reads as empty, a rollback goes to
// "<previous release>", and the health check sends no request.
//
// Where things are:
//
//	recipe.go    the Recipe, its variables' defaults and its task list
//	flow.go      the deploy task (the flow's order of stages), deploy:starting, FleetError
//	steps.go     how consecutive steps share one command per host (stepCombiner, runPlans)
//	scripts.go   the remote shell scripts (scripts/*.sh, embedded), and running one
//	check.go     deploy:check and its steps, deploy:setup
//	lock.go      deploy:lock (which also reads each host's state; the first host by key alone,
//	             then the rest), deploy:unlock
//	update.go    deploy:updating: revision, release id, <scm>:update and create_release, REVISION, shared links
//	publish.go   deploy:publishing: the switch of current, rolling publish in batches
//	rolling.go   a rolling publish behind a load balancer: lb:deregister and lb:register per batch
//	health.go    deploy:health_check
//	finish.go    deploy:finishing: cleanup, revisions.log, unlock
//	rollback.go  the rollback task: choosing the release, marking the old one bad
//	undo.go      what a failure undoes: remove the new release, move current back
//	run.go       one flow's state (runState, hostState)
//	state.go     the on-server state davit keeps and the probe's parser
//	releases.go  the releases task
//	vars.go      CheckVars: every variable the recipe reads, validated before the run's first command
//
// testdata/*.golden is exactly what a host receives in a setup, a first
// deploy, a repeat deploy and a rollback.
package capdeploy
