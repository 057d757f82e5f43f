package kumotest

import (
	"bufio"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestBuildKumo builds kumo into the cache if it is not there yet. CI
// runs it before the test suite, so no test waits minutes for a cold
// build under the suite's timeout.
func TestBuildKumo(t *testing.T) {
	start := time.Now()
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(bin)
	if err != nil || fi.Mode()&0o111 == 0 {
		t.Fatalf("%s is not an executable: %v", bin, err)
	}
	t.Logf("kumo at %s (%s)", bin, time.Since(start).Round(time.Second))
}

// TestStartListensOnLoopbackOnly: kumo's default host is 0.0.0.0; the
// socket it listens on must be 127.0.0.1's alone.
func TestStartListensOnLoopbackOnly(t *testing.T) {
	endpoint := Start(t)
	u, err := url.Parse(endpoint)
	if err != nil || u.Hostname() != "127.0.0.1" {
		t.Fatalf("endpoint %q", endpoint)
	}
	port, _ := strconv.Atoi(u.Port())
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		t.Skipf("no /proc/net/tcp to read listening sockets from: %v", err)
	}
	defer f.Close()
	// Lines: sl local_address rem_address st ...; 0A is LISTEN, addresses
	// are hex, IPv4 in little-endian byte order on x86 and arm.
	portHex := fmt.Sprintf(":%04X", port)
	var listening []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 3 && fields[3] == "0A" && strings.HasSuffix(fields[1], portHex) {
			listening = append(listening, fields[1])
		}
	}
	if len(listening) != 1 || listening[0] != "0100007F"+portHex {
		t.Errorf("listening sockets on port %d: %v; want 127.0.0.1 (0100007F%s) alone", port, listening, portHex)
	}
	// Nothing on any interface over IPv6 either.
	if b, err := os.ReadFile("/proc/net/tcp6"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			fields := strings.Fields(line)
			if len(fields) > 3 && fields[3] == "0A" && strings.HasSuffix(fields[1], portHex) {
				t.Errorf("kumo also listens on IPv6 %s", fields[1])
			}
		}
	}
}
