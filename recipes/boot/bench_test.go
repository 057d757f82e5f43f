package boot

import (
	"context"
	"testing"

	"github.com/davit-deploy/davit/recipes/boot/imdstest"
)

// BenchmarkReadMetadata is one boot's whole metadata read (a token, eight
// paths and the user data) from AWS's mock on loopback: the floor of what a
// self-deploy spends before its first command.
func BenchmarkReadMetadata(b *testing.B) {
	m := imdstest.Start(b, payrollInstance)
	for b.Loop() {
		if _, err := ReadMetadata(context.Background(), MetadataOptions{Endpoint: m.URL}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWriteHostsUnchanged is a boot whose hosts file is already
// right: read, render, compare, no write.
func BenchmarkWriteHostsUnchanged(b *testing.B) {
	path := b.TempDir() + "/hosts"
	entries := []HostsEntry{{"dbhost", "10.0.0.5"}}
	if _, err := WriteHosts(path, entries); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if changed, err := WriteHosts(path, entries); err != nil || changed {
			b.Fatal(changed, err)
		}
	}
}
