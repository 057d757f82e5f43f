package deploy

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeSource is a HostSource for tests: fixed hosts, an error, or a wait.
type fakeSource struct {
	name, desc string
	hosts      []*Host
	err        error
	block      bool // never answers until ctx ends
	calls      atomic.Int32
	started    chan struct{}
}

func (f *fakeSource) Name() string     { return f.name }
func (f *fakeSource) Describe() string { return f.desc }
func (f *fakeSource) Hosts(ctx context.Context) ([]*Host, error) {
	f.calls.Add(1)
	if f.started != nil {
		f.started <- struct{}{}
	}
	if f.block {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return f.hosts, f.err
}

func TestResolveInventoryMergesSourcesWithDeclaredServers(t *testing.T) {
	declared := []*Host{
		{Name: "db1", Roles: []string{"db"}, Primary: true},
		{Name: "app1", Roles: []string{"app"}, Props: map[string]any{"weight": 2}},
	}
	ec2 := &fakeSource{name: "ec2", desc: "tagged App=payroll", hosts: []*Host{
		{Name: "app1", Address: "127.0.0.5", Roles: []string{"web"}, Props: map[string]any{"instance_id": "i-1"}},
		{Name: "app2", Address: "127.0.0.6", Roles: []string{"app"}},
		{Name: "app2", Port: 2222, Roles: []string{"app"}}, // another port: another host
	}}
	inv, err := ResolveInventory(context.Background(), declared, []HostSource{ec2}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, h := range inv.Hosts {
		got = append(got, h.String()+"="+h.Source+"/"+strings.Join(h.Roles, ","))
	}
	want := "db1=static/db app1=static+ec2/app,web app2=ec2/app app2:2222=ec2/app"
	if strings.Join(got, " ") != want {
		t.Errorf("hosts = %s\nwant    %s", strings.Join(got, " "), want)
	}
	app1 := inv.Hosts[1]
	if app1.Address != "127.0.0.5" || app1.Props["weight"] != 2 || app1.Props["instance_id"] != "i-1" {
		t.Errorf("merged app1 = %+v", app1)
	}
	if declared[1].Source != "" || len(declared[1].Roles) != 1 {
		t.Errorf("the declared hosts were changed: %+v", declared[1])
	}
	if got, want := inv.Describe(), "2 declared servers; ec2 (tagged App=payroll): 3 hosts"; got != want {
		t.Errorf("Describe = %q; want %q", got, want)
	}
	if ec2.calls.Load() != 1 {
		t.Errorf("source asked %d times; want once", ec2.calls.Load())
	}
}

func TestResolveInventoryAsksSourcesConcurrently(t *testing.T) {
	// Each source answers only once both have been asked: resolving them
	// one after the other would time out.
	started := make(chan struct{}, 2)
	both := make(chan struct{})
	go func() { <-started; <-started; close(both) }()
	mk := func(name string) HostSource {
		return &waitSource{fakeSource: fakeSource{name: name, desc: name, hosts: []*Host{{Name: name}}, started: started}, until: both}
	}
	inv, err := ResolveInventory(context.Background(), nil, []HostSource{mk("a"), mk("b")}, 5*time.Second)
	if err != nil || len(inv.Hosts) != 2 {
		t.Fatalf("ResolveInventory = %v, %v", inv, err)
	}
}

type waitSource struct {
	fakeSource
	until chan struct{}
}

func (w *waitSource) Hosts(ctx context.Context) ([]*Host, error) {
	w.started <- struct{}{}
	<-w.until
	return w.hosts, nil
}

func TestResolveInventoryErrorsNameTheSource(t *testing.T) {
	bad := &fakeSource{name: "ec2", desc: "tagged Env=prod in eu-west-1", err: errors.New("no credentials")}
	slow := &fakeSource{name: "cmdb", desc: "the asset list", block: true}
	ok := &fakeSource{name: "ok", desc: "fine", hosts: []*Host{{Name: "x"}}}
	_, err := ResolveInventory(context.Background(), nil, []HostSource{bad, slow, ok}, 50*time.Millisecond)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		"host source ec2 (tagged Env=prod in eu-west-1): no credentials",
		"host source cmdb (the asset list): no answer within 50ms",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	nameless := &fakeSource{name: "ec2", desc: "d", hosts: []*Host{{Address: "1.2.3.4"}}}
	if _, err := ResolveInventory(context.Background(), nil, []HostSource{nameless}, time.Second); err == nil || !strings.Contains(err.Error(), "without a name") {
		t.Errorf("nameless host: %v", err)
	}
}

func TestResolveInventoryHonoursCancellation(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := ResolveInventory(ctx, nil, []HostSource{&fakeSource{name: "s", desc: "d", block: true}}, time.Minute)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v; want context.Canceled", err)
	}
}

func TestInventoryDescribeWithoutSources(t *testing.T) {
	inv, err := ResolveInventory(context.Background(), []*Host{{Name: "a"}, {Name: "a"}}, nil, 0)
	if err != nil || len(inv.Hosts) != 1 || inv.Hosts[0].Source != StaticSource {
		t.Fatalf("inv = %+v, %v", inv, err)
	}
	if got := inv.Describe(); got != "1 declared server" {
		t.Errorf("Describe = %q", got)
	}
	empty := &Inventory{Sources: []SourceResult{{Name: "ec2", Describe: "tagged Env=prod"}}}
	if got := empty.Describe(); got != "0 declared servers; ec2 (tagged Env=prod): none" {
		t.Errorf("Describe = %q", got)
	}
}
