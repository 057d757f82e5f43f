// Package boot is `davit self-deploy`: an EC2 instance configuring and
// deploying itself at boot, with no SSH and nobody logged in.
//
//	metadata.go  the instance's metadata over IMDSv2 (never IMDSv1), bounded
//	userdata.go  user data (KEY=VALUE;KEY=VALUE or a JSON object) as run variables
//	hosts.go     davit's own lines of /etc/hosts, rewritten atomically
//	boot.go      the flow: read, check, write the hosts file, deploy locally
//	             as the application user, run the role's start tasks
//	install.go   the systemd unit that runs it at boot
//
// The deploy itself is an ordinary run (tasks/run) whose one host is this
// machine, given in place of the stage's servers and host sources, so the
// boot needs neither the EC2 API nor SSH keys.
package boot
