package imdstest

import (
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
)

// The mock builds from the tools module and is the pinned version; .ci/run
// runs this test first, so every later test finds the binary built.
func TestBuildMock(t *testing.T) {
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "1.13.0") {
		t.Fatalf("%s --version: %v\n%s", bin, err, out)
	}
}

// The mock requires a token and serves the configured values and the user
// data decoded.
func TestMockServesConfig(t *testing.T) {
	m := Start(t, Config{InstanceType: "m1.small", UserData: "DB=10.0.0.5;ROLE=job"})
	get := func(path, token string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, m.URL+path, nil)
		if token != "" {
			req.Header.Set("X-aws-ec2-metadata-token", token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/latest/meta-data/instance-type", ""); code != http.StatusUnauthorized {
		t.Errorf("without a token: %d, want 401", code)
	}
	req, _ := http.NewRequest(http.MethodPut, m.URL+"/latest/api/token", nil)
	req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "60")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if code, body := get("/latest/meta-data/instance-type", string(tok)); code != 200 || body != "m1.small" {
		t.Errorf("instance-type: %d %q", code, body)
	}
	if code, body := get("/latest/user-data", string(tok)); code != 200 || body != "DB=10.0.0.5;ROLE=job" {
		t.Errorf("user-data: %d %q", code, body)
	}
}
