package sshtest

import (
	"io"
	"net"
	"strconv"
	"sync"
	"testing"

	"github.com/davit-deploy/davit/deploy"
)

// SilentHost is the loopback address silent servers listen on: above the
// range fleets use (127.0.0.2–127.0.0.251), so it never collides with one.
const SilentHost = "127.0.0.252"

// SilentServer accepts TCP connections and never sends a byte: no SSH
// banner, no reset, no close. Whatever the client sends is read and
// discarded, so the client's writes never block either. It is what a
// client meets at a host whose sshd hangs before its banner, or behind a
// firewall that accepts connections and drops everything after.
type SilentServer struct {
	// Name is "silent", the name DeployHost gives it.
	Name string
	Host string
	Port int
	// Addr is Host:Port.
	Addr string

	l        net.Listener
	mu       sync.Mutex
	conns    []net.Conn
	accepted int
	closed   bool
	wg       sync.WaitGroup
}

// StartSilent starts a silent server on SilentHost and closes it, and every
// connection it accepted, when the test ends.
func StartSilent(t testing.TB) *SilentServer {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(SilentHost, "0"))
	if err != nil {
		t.Fatalf("sshtest: silent server on %s: %v", SilentHost, err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	s := &SilentServer{Name: "silent", Host: SilentHost, Port: port, Addr: net.JoinHostPort(SilentHost, strconv.Itoa(port)), l: l}
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(s.Close)
	return s
}

func (s *SilentServer) accept() {
	defer s.wg.Done()
	for {
		c, err := s.l.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.accepted++
		if s.closed {
			s.mu.Unlock()
			c.Close()
			continue
		}
		s.conns = append(s.conns, c)
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			io.Copy(io.Discard, c)
		}()
	}
}

// Accepted is how many connections the server has accepted so far.
func (s *SilentServer) Accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted
}

// DeployHost describes the server as an SSH host.
func (s *SilentServer) DeployHost() *deploy.Host {
	return &deploy.Host{Name: s.Name, Address: s.Host, Port: s.Port, Backend: "ssh"}
}

// Close stops listening and closes every accepted connection. It is safe
// to call more than once.
func (s *SilentServer) Close() {
	s.l.Close()
	s.mu.Lock()
	s.closed = true
	for _, c := range s.conns {
		c.Close()
	}
	s.conns = nil
	s.mu.Unlock()
	s.wg.Wait()
}
