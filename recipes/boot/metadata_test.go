package boot

import (
	"context"
	"maps"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/davit-deploy/davit/recipes/boot/imdstest"
)

var payrollInstance = imdstest.Config{
	InstanceID: "i-0abc1234def567890", InstanceType: "m1.large", AZ: "eu-west-1b", Region: "eu-west-1",
	LocalIPv4: "10.0.1.17", PublicIPv4: "203.0.113.9",
	LocalHostname: "ip-10-0-1-17.eu-west-1.compute.internal", PublicHostname: "ec2-203-0-113-9.eu-west-1.compute.amazonaws.com",
	UserData: "DB=10.0.0.5;ROLE=job;STAGE=production",
}

func TestReadMetadataIMDSv2(t *testing.T) {
	m := imdstest.Start(t, payrollInstance)
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", m.URL)
	md, err := ReadMetadata(context.Background(), MetadataOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if string(md.UserData) != payrollInstance.UserData {
		t.Errorf("user data %q", md.UserData)
	}
	want := map[string]any{
		"instance_id": "i-0abc1234def567890", "instance_type": "m1.large", "az": "eu-west-1b", "region": "eu-west-1",
		"private_ip": "10.0.1.17", "public_ip": "203.0.113.9",
		"private_dns": "ip-10-0-1-17.eu-west-1.compute.internal", "public_dns": "ec2-203-0-113-9.eu-west-1.compute.amazonaws.com",
	}
	if got := md.Props(); !maps.Equal(got, want) {
		t.Errorf("props %v\nwant %v", got, want)
	}
	md, err = ReadMetadata(context.Background(), MetadataOptions{SkipUserData: true})
	if err != nil || md.UserData != nil {
		t.Errorf("SkipUserData: %q, %v", md.UserData, err)
	}
}

// A service that offers no IMDSv2 token is refused, not read the IMDSv1
// way, though it would answer.
func TestReadMetadataRefusesIMDSv1(t *testing.T) {
	cfg := payrollInstance
	cfg.V1Only = true
	m := imdstest.Start(t, cfg)
	md, err := ReadMetadata(context.Background(), MetadataOptions{Endpoint: m.URL})
	if err == nil {
		t.Fatalf("read %+v over IMDSv1", md)
	}
	if !strings.Contains(err.Error(), "gave no IMDSv2 session token") || !strings.Contains(err.Error(), m.URL) {
		t.Errorf("error: %v", err)
	}
	if strings.Contains(m.Log(), "/latest/meta-data/instance-id") {
		t.Errorf("a metadata path was asked without a token:\n%s", m.Log())
	}
}

// The service stops accepting the session token in the middle of a read
// (it forgets it, as an expired one): the client gets a new token and the
// read completes.
func TestReadMetadataTokenExpiresMidRun(t *testing.T) {
	m := imdstest.Start(t, payrollInstance)
	var gets, puts atomic.Int32
	client := doer(func(r *http.Request) (*http.Response, error) {
		if r.Method == http.MethodPut {
			puts.Add(1)
		} else if gets.Add(1) == 3 {
			m.Restart()
		}
		return http.DefaultTransport.RoundTrip(r)
	})
	md, err := ReadMetadata(context.Background(), MetadataOptions{Endpoint: m.URL, HTTPClient: client})
	if err != nil {
		t.Fatal(err)
	}
	if md.InstanceType != "m1.large" || md.PublicDNS != payrollInstance.PublicHostname || string(md.UserData) != payrollInstance.UserData {
		t.Errorf("read %+v", md)
	}
	if puts.Load() != 2 {
		t.Errorf("%d token requests; want 2 (the first token, then its replacement)", puts.Load())
	}
}

type doer func(*http.Request) (*http.Response, error)

func (d doer) Do(r *http.Request) (*http.Response, error) { return d(r) }

// No metadata service at all: a port nobody listens on fails at once; one
// that accepts and never answers fails at the timeout, naming it.
func TestReadMetadataNoService(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	l.Close()
	_, err = ReadMetadata(context.Background(), MetadataOptions{Endpoint: closed})
	if err == nil || !strings.Contains(err.Error(), "cannot reach the metadata service") || !strings.Contains(err.Error(), "--user-data") {
		t.Errorf("closed port: %v", err)
	}

	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	start := time.Now()
	_, err = ReadMetadata(context.Background(), MetadataOptions{Endpoint: "http://" + silent.Addr().String(), Timeout: 700 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "no answer within 700ms") {
		t.Errorf("silent service: %v", err)
	}
	// The bound holds (with room for a loaded machine): the read does not
	// wait for the SDK's own per-request timeouts and retries.
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("gave up after %s; the bound was 700ms", d)
	}
}
