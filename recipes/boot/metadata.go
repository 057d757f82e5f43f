package boot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// DefaultMetadataTimeout bounds the whole read of the instance metadata:
// on EC2 it takes milliseconds; off EC2 the link-local address does not
// answer at all, and the boot should say so in seconds, not hang.
const DefaultMetadataTimeout = 5 * time.Second

// defaultEndpoint is IMDS's address on every EC2 instance (IPv4).
const defaultEndpoint = "http://169.254.169.254"

// Metadata is what the boot needs to know of this instance.
type Metadata struct {
	InstanceID   string
	InstanceType string
	AZ           string
	Region       string
	PrivateIP    string
	PublicIP     string
	PrivateDNS   string
	PublicDNS    string
	// UserData is the instance's user data as given at launch; nil when
	// it has none.
	UserData []byte
}

// Props are the host properties of this instance, under the names EC2
// discovery (ec2_servers) gives them, so tasks read them the same way
// whether the host was discovered from outside or deployed itself.
// Empty values are left out.
func (m *Metadata) Props() map[string]any {
	props := map[string]any{}
	for k, v := range map[string]string{
		"instance_id": m.InstanceID, "instance_type": m.InstanceType, "az": m.AZ, "region": m.Region,
		"private_ip": m.PrivateIP, "public_ip": m.PublicIP, "private_dns": m.PrivateDNS, "public_dns": m.PublicDNS,
	} {
		if v != "" {
			props[k] = v
		}
	}
	return props
}

// MetadataOptions configure ReadMetadata.
type MetadataOptions struct {
	// Endpoint is the metadata service; "" is the SDK's choice
	// (AWS_EC2_METADATA_SERVICE_ENDPOINT, else 169.254.169.254).
	Endpoint string
	// Timeout bounds the whole read; 0 is DefaultMetadataTimeout.
	Timeout time.Duration
	// SkipUserData leaves the user data unread (--user-data gives it).
	SkipUserData bool
	// HTTPClient sends the requests; nil is the SDK's.
	HTTPClient imds.HTTPClient
}

// ReadMetadata reads the instance's identity, type, placement, addresses
// and user data over IMDSv2: every request carries a session token, and a
// service that will not issue one is refused rather than asked the IMDSv1
// way. A token the service stops accepting is replaced (the SDK asks for a
// new one and repeats the request). Addresses and user data an instance
// may lack are left empty.
func ReadMetadata(ctx context.Context, opts MetadataOptions) (*Metadata, error) {
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultMetadataTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	endpoint := endpointName(opts.Endpoint)
	client := imds.New(imds.Options{
		Endpoint:       opts.Endpoint,
		EnableFallback: aws.FalseTernary,
		HTTPClient:     opts.HTTPClient,
	})
	r := &reader{ctx: ctx, client: client, endpoint: endpoint, timeout: timeout}
	m := &Metadata{}
	var err error
	for _, f := range []struct {
		path     string
		dst      *string
		optional bool
	}{
		{"instance-id", &m.InstanceID, false},
		{"instance-type", &m.InstanceType, false},
		{"placement/availability-zone", &m.AZ, false},
		{"local-ipv4", &m.PrivateIP, true},
		{"public-ipv4", &m.PublicIP, true},
		{"local-hostname", &m.PrivateDNS, true},
		{"public-hostname", &m.PublicDNS, true},
	} {
		v, err := r.get(f.path, f.optional)
		if err != nil {
			return nil, err
		}
		*f.dst = v
	}
	// placement/region is the region itself; older instances only have
	// it in the identity document, which GetRegion reads.
	if m.Region, err = r.get("placement/region", true); err != nil {
		return nil, err
	}
	if m.Region == "" {
		region, err := client.GetRegion(ctx, nil)
		if err != nil {
			return nil, r.explain("region", err)
		}
		m.Region = region.Region
	}
	if !opts.SkipUserData {
		out, err := client.GetUserData(ctx, nil)
		switch {
		case status(err) == http.StatusNotFound:
			// An instance launched without user data.
		case err != nil:
			return nil, r.explain("user-data", err)
		default:
			defer out.Content.Close()
			if m.UserData, err = io.ReadAll(out.Content); err != nil {
				return nil, r.explain("user-data", err)
			}
		}
	}
	return m, nil
}

// reader reads metadata paths and says why one failed.
type reader struct {
	ctx      context.Context
	client   *imds.Client
	endpoint string
	timeout  time.Duration
}

func (r *reader) get(path string, optional bool) (string, error) {
	out, err := r.client.GetMetadata(r.ctx, &imds.GetMetadataInput{Path: path})
	if err != nil {
		if optional && status(err) == http.StatusNotFound {
			return "", nil
		}
		return "", r.explain(path, err)
	}
	defer out.Content.Close()
	b, err := io.ReadAll(out.Content)
	if err != nil {
		return "", r.explain(path, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// explain turns the SDK's error into what a person at a boot log needs:
// which path, which service, and whether it is missing, slow or refuses
// IMDSv2.
func (r *reader) explain(path string, err error) error {
	what := fmt.Sprintf("instance metadata %s from %s", path, r.endpoint)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(r.ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%s: no answer within %s; is this an EC2 instance? (off EC2, give --user-data and --instance-type): %w", what, r.timeout, err)
	}
	noToken := fmt.Errorf("%s: the service gave no IMDSv2 session token, and davit does not fall back to IMDSv1 (require IMDSv2 on the instance: HttpTokens=required): %w", what, err)
	if tokenRefused(err) {
		return noToken
	}
	// The SDK's token provider wraps its errors in a type without Unwrap,
	// so a failure to connect is known by the SDK's words as well.
	var send *smithyhttp.RequestSendError
	if errors.As(err, &send) || strings.Contains(err.Error(), "request send failed") {
		return fmt.Errorf("%s: cannot reach the metadata service; is this an EC2 instance? (off EC2, give --user-data and --instance-type): %w", what, err)
	}
	// The SDK's words for a failed token request that carries no
	// response.
	if strings.Contains(err.Error(), "failed to get API token") {
		return noToken
	}
	return fmt.Errorf("%s: %w", what, err)
}

// tokenRefused reports whether err is the service refusing the PUT that
// asks for an IMDSv2 token.
func tokenRefused(err error) bool {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.Response != nil && re.Response.Response != nil && re.Response.Request != nil {
		return re.Response.Request.Method == http.MethodPut
	}
	return false
}

// status is the HTTP status of err's response, or 0.
func status(err error) int {
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// endpointName is the service's address, for messages.
func endpointName(opt string) string {
	if opt != "" {
		return opt
	}
	if v := os.Getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT"); v != "" {
		return v
	}
	return defaultEndpoint
}
