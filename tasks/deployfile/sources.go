package deployfile

import "github.com/davit-deploy/davit/deploy"

// HostSources are the host sources the Deployfile and the selected stage
// recorded; recipes' builtins record them.
func (p *Project) HostSources() []deploy.HostSource { return nil }
