package deployfile

import (
	"fmt"
	"path"
	"strings"
	"time"

	"go.starlark.net/starlark"

	"github.com/davit-deploy/davit/deploy/output"
	"github.com/davit-deploy/davit/tasks/remoterecipe"
)

// resolveRemote maps load("git+…") to a file of the source's checkout,
// resolved (or read from the lock) by the project's resolver.
func (p *Project) resolveRemote(name, at string) (moduleRef, error) {
	spec, err := remoterecipe.ParseSpec(name)
	if err != nil {
		return moduleRef{}, err
	}
	r, err := p.remoteResolver()
	if err != nil {
		return moduleRef{}, err
	}
	co, err := r.Resolve(p.ctx, spec, at)
	if err != nil {
		return moduleRef{}, err
	}
	return moduleRef{remote: co, path: spec.Path}, nil
}

// remoteResolver is Options.Remote, or one following the lock beside the
// Deployfile, made the first time a git recipe is loaded: a Deployfile
// without any never reads a lock or a cache.
func (p *Project) remoteResolver() (*remoterecipe.Resolver, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.remote != nil {
		return p.remote, nil
	}
	if p.opts.Remote != nil {
		p.remote = p.opts.Remote
		return p.remote, nil
	}
	r, err := remoterecipe.New(remoterecipe.Config{LockPath: remoterecipe.LockPathFor(p.path)})
	if err != nil {
		return nil, err
	}
	p.remote = r
	return r, nil
}

// finishRemote writes the lock if the load resolved a git recipe anew,
// and warns of sources the lock lists that the Deployfile no longer
// loads. An Update resolver with nothing loaded still finishes, to say
// that the source to update is not loaded.
func (p *Project) finishRemote() error {
	p.mu.Lock()
	r := p.remote
	if r == nil {
		r = p.opts.Remote
	}
	p.mu.Unlock()
	if r == nil {
		return nil
	}
	stale, err := r.Finish()
	if err != nil {
		return err
	}
	if len(stale) > 0 && p.opts.Sink != nil {
		p.opts.Sink.Emit(output.Event{Time: time.Now(), Kind: output.Message, Level: "warn",
			Line: fmt.Sprintf("%s lists git recipes the Deployfile no longer loads (%s); `davit recipes update` drops them",
				path.Base(remoterecipe.LockPathFor(p.path)), strings.Join(stale, ", "))})
	}
	return nil
}

// RemoteSources are the git recipes the load used, by source.
func (p *Project) RemoteSources() []*remoterecipe.Checkout {
	p.mu.Lock()
	r := p.remote
	p.mu.Unlock()
	if r == nil {
		return nil
	}
	return r.Sources()
}

// requireError is require()'s refusal: it names the Deployfile, or the
// git recipe whose file called it with that recipe's version, since a
// recipe's author and a Deployfile's are not the same people.
func (p *Project) requireError(th *starlark.Thread, constraint string) error {
	if ref := stateOf(th).module; ref.remote != nil {
		return fmt.Errorf("recipe %s %s requires davit %s, this is davit %s (%s)",
			path.Base(ref.path), ref.remote.Version(), constraint, p.opts.Version, ref.display())
	}
	return fmt.Errorf("this Deployfile requires davit %s, but this is davit %s", constraint, p.opts.Version)
}
