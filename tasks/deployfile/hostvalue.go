package deployfile

import (
	"fmt"
	"hash/fnv"
	"io/fs"
	"maps"
	"slices"
	"strings"

	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/davit-deploy/davit/deploy"
	"github.com/davit-deploy/davit/tasks"
)

// hostValue is a host in Starlark. Handles from roles(), hosts() and
// primary() describe a host; the handle on() passes to its function also
// runs commands there (hc is set). It is immutable, so it may be shared.
type hostValue struct {
	h  *deploy.Host
	hc *tasks.HostContext
}

var (
	_ starlark.HasAttrs   = (*hostValue)(nil)
	_ starlark.Comparable = (*hostValue)(nil)
)

func (v *hostValue) String() string       { return v.h.String() }
func (v *hostValue) Type() string         { return "host" }
func (v *hostValue) Freeze()              {}
func (v *hostValue) Truth() starlark.Bool { return true }

func (v *hostValue) Hash() (uint32, error) {
	f := fnv.New32a()
	f.Write([]byte(v.h.Key()))
	return f.Sum32(), nil
}

// CompareSameType makes two handles for the same server equal.
func (v *hostValue) CompareSameType(op syntax.Token, y starlark.Value, depth int) (bool, error) {
	eq := v.h.Key() == y.(*hostValue).h.Key()
	switch op {
	case syntax.EQL:
		return eq, nil
	case syntax.NEQ:
		return !eq, nil
	}
	return false, fmt.Errorf("hosts cannot be ordered")
}

type hostMethod func(*hostValue, *starlark.Thread, *starlark.Builtin, starlark.Tuple, []starlark.Tuple) (starlark.Value, error)

// hostMethodNames lists the methods method knows, for dir(host).
func hostMethodNames() []string {
	return []string{"capture", "download", "execute", "test", "upload", "upload_string"}
}

func method(name string) hostMethod {
	switch name {
	case "execute":
		return (*hostValue).execute
	case "capture":
		return (*hostValue).capture
	case "test":
		return (*hostValue).test
	case "upload":
		return (*hostValue).upload
	case "upload_string":
		return (*hostValue).uploadString
	case "download":
		return (*hostValue).download
	}
	return nil
}

func (v *hostValue) AttrNames() []string {
	names := []string{"address", "name", "port", "primary", "properties", "roles", "user"}
	names = append(names, hostMethodNames()...)
	slices.Sort(names)
	return names
}

func (v *hostValue) Attr(name string) (starlark.Value, error) {
	h := v.h
	switch name {
	case "name":
		return starlark.String(h.Name), nil
	case "user":
		return starlark.String(h.User), nil
	case "address":
		return starlark.String(h.DialAddress()), nil
	case "port":
		return starlark.MakeInt(h.Port), nil
	case "primary":
		return starlark.Bool(h.Primary), nil
	case "roles":
		elems := make([]starlark.Value, len(h.Roles))
		for i, r := range h.Roles {
			elems[i] = starlark.String(r)
		}
		return starlark.NewList(elems), nil
	case "properties":
		props := make(map[string]any, len(h.Props))
		maps.Copy(props, h.Props)
		return toStarlark(props)
	}
	if m := method(name); m != nil {
		return starlark.NewBuiltin(name, func(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			return m(v, th, b, args, kwargs)
		}), nil
	}
	return nil, nil
}

// ctx returns the HostContext, or explains that only on()'s handle runs
// commands.
func (v *hostValue) ctx(th *starlark.Thread, method string) (*tasks.HostContext, error) {
	if v.hc == nil {
		if st := stateOf(th); st.phase != phaseTask {
			return nil, fmt.Errorf("host.%s() can only be called inside a task", method)
		}
		return nil, fmt.Errorf("host.%s(): %s is a description, not a connection; call it on the handle on(hosts, fn) passes to fn", method, v.h)
	}
	return v.hc, nil
}

// commandArgs reads a command's positional arguments and keyword options.
// One string is a shell line; several are words quoted for the shell; a
// single list is the same as its elements given separately.
func commandArgs(method string, args starlark.Tuple, kwargs []starlark.Tuple) ([]string, tasks.CommandOptions, error) {
	var opts tasks.CommandOptions
	if len(args) == 1 {
		if l, ok := args[0].(*starlark.List); ok {
			args = make(starlark.Tuple, l.Len())
			for i := range args {
				args[i] = l.Index(i)
			}
		}
	}
	if len(args) == 0 {
		return nil, opts, fmt.Errorf("%s: no command given", method)
	}
	words := make([]string, len(args))
	for i, a := range args {
		s, ok := word(a)
		if !ok {
			return nil, opts, fmt.Errorf("%s: argument %d is a %s; want a string or number", method, i+1, a.Type())
		}
		words[i] = s
	}
	var within, user, umask, timeout starlark.Value
	var env *starlark.Dict
	var pty bool
	if err := starlark.UnpackArgs(method, nil, kwargs,
		"within?", &within, "env?", &env, "user?", &user, "timeout?", &timeout, "umask?", &umask, "pty?", &pty); err != nil {
		return nil, opts, err
	}
	var err error
	if opts.Within, err = optString(method+": within", within); err != nil {
		return nil, opts, err
	}
	if opts.User, err = optString(method+": user", user); err != nil {
		return nil, opts, err
	}
	if opts.Umask, err = optString(method+": umask", umask); err != nil {
		return nil, opts, err
	}
	if opts.Timeout, err = seconds(method+": timeout", timeout); err != nil {
		return nil, opts, err
	}
	opts.PTY = pty
	if env != nil {
		opts.Env = map[string]string{}
		for _, kv := range env.Items() {
			k, ok := starlark.AsString(kv[0])
			if !ok {
				return nil, opts, fmt.Errorf("%s: env keys must be strings, got %s", method, kv[0].Type())
			}
			val, ok := word(kv[1])
			if !ok {
				return nil, opts, fmt.Errorf("%s: env[%q] is a %s; want a string or number", method, k, kv[1].Type())
			}
			opts.Env[k] = val
		}
	}
	return words, opts, nil
}

func (v *hostValue) execute(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	hc, err := v.ctx(th, "execute")
	if err != nil {
		return nil, err
	}
	words, opts, err := commandArgs("execute", args, kwargs)
	if err != nil {
		return nil, err
	}
	if err := hc.Execute(words, opts); err != nil {
		return nil, err
	}
	return starlark.None, nil
}

func (v *hostValue) capture(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	hc, err := v.ctx(th, "capture")
	if err != nil {
		return nil, err
	}
	words, opts, err := commandArgs("capture", args, kwargs)
	if err != nil {
		return nil, err
	}
	out, err := hc.Capture(words, opts)
	if err != nil {
		return nil, err
	}
	return starlark.String(out), nil
}

func (v *hostValue) test(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	hc, err := v.ctx(th, "test")
	if err != nil {
		return nil, err
	}
	words, opts, err := commandArgs("test", args, kwargs)
	if err != nil {
		return nil, err
	}
	ok, err := hc.Test(words, opts)
	if err != nil {
		return nil, err
	}
	return starlark.Bool(ok), nil
}

func fileMode(what string, v starlark.Value, def fs.FileMode) (fs.FileMode, error) {
	if v == nil || v == starlark.None {
		return def, nil
	}
	var m int
	if err := starlark.AsInt(v, &m); err != nil || m < 0 || m > 0o7777 {
		return 0, fmt.Errorf("%s: mode must be an integer such as 0o644", what)
	}
	return fs.FileMode(m), nil
}

func (v *hostValue) upload(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	hc, err := v.ctx(th, "upload")
	if err != nil {
		return nil, err
	}
	var src, dest string
	var modeV starlark.Value
	if err := starlark.UnpackArgs("upload", args, kwargs, "src", &src, "dest", &dest, "mode?", &modeV); err != nil {
		return nil, err
	}
	mode, err := fileMode("upload", modeV, 0)
	if err != nil {
		return nil, err
	}
	if err := hc.UploadFile(src, dest, mode); err != nil {
		return nil, err
	}
	return starlark.None, nil
}

func (v *hostValue) uploadString(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	hc, err := v.ctx(th, "upload_string")
	if err != nil {
		return nil, err
	}
	var content, dest string
	var modeV starlark.Value
	if err := starlark.UnpackArgs("upload_string", args, kwargs, "content", &content, "dest", &dest, "mode?", &modeV); err != nil {
		return nil, err
	}
	mode, err := fileMode("upload_string", modeV, 0o644)
	if err != nil {
		return nil, err
	}
	if err := hc.Upload(strings.NewReader(content), dest, mode); err != nil {
		return nil, err
	}
	return starlark.None, nil
}

func (v *hostValue) download(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	hc, err := v.ctx(th, "download")
	if err != nil {
		return nil, err
	}
	var remote, local string
	if err := starlark.UnpackArgs("download", args, kwargs, "remote", &remote, "local", &local); err != nil {
		return nil, err
	}
	if err := hc.DownloadFile(remote, local); err != nil {
		return nil, err
	}
	return starlark.None, nil
}
