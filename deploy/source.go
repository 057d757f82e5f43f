package deploy

import "context"

// HostSource is somewhere hosts come from besides the Deployfile's own
// server() and role() declarations: EC2 instances found by their tags, say.
// A stage records sources while it is selected; the run asks each one once,
// only when a task is about to run (never for `davit -T`), and merges what
// they return with the declared servers (see ResolveInventory).
type HostSource interface {
	// Name is a short label for the source ("ec2"), which every host it
	// returns carries as Host.Source and `davit STAGE hosts` shows.
	Name() string
	// Describe says what the source asks for, in words an operator can
	// check ("running EC2 instances tagged App=payroll, Env=production in
	// eu-west-1"): errors and an empty result quote it.
	Describe() string
	// Hosts returns the source's hosts now. It must return when ctx is
	// done, and must not return hosts whose Name is empty.
	Hosts(ctx context.Context) ([]*Host, error)
}
