package cloudfronttest

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront/types"
	"github.com/aws/smithy-go"
)

func client(t *testing.T, srv *Server) *cloudfront.Client {
	t.Helper()
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return cloudfront.New(cloudfront.Options{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
		BaseEndpoint: aws.String(hs.URL),
	})
}

func batch(ref string, paths ...string) *types.InvalidationBatch {
	return &types.InvalidationBatch{CallerReference: aws.String(ref), Paths: &types.Paths{Quantity: aws.Int32(int32(len(paths))), Items: paths}}
}

// The SDK's client creates an invalidation, sees it in progress, then
// completed once the delay passed; its waiter waits for that.
func TestInvalidationLifecycle(t *testing.T) {
	srv := New(300 * time.Millisecond)
	srv.AddDistribution("EDFDVBD6EXAMPLE")
	cf := client(t, srv)
	ctx := context.Background()
	out, err := cf.CreateInvalidation(ctx, &cloudfront.CreateInvalidationInput{DistributionId: aws.String("EDFDVBD6EXAMPLE"), InvalidationBatch: batch("r1", "/a.js", "/css/b.css")})
	if err != nil {
		t.Fatal(err)
	}
	inv := out.Invalidation
	if aws.ToString(inv.Status) != "InProgress" || !strings.HasPrefix(aws.ToString(inv.Id), "I") || !strings.HasSuffix(aws.ToString(out.Location), "/invalidation/"+aws.ToString(inv.Id)) {
		t.Fatalf("created %+v at %s", inv, aws.ToString(out.Location))
	}
	if got := inv.InvalidationBatch.Paths.Items; strings.Join(got, ",") != "/a.js,/css/b.css" {
		t.Errorf("paths %v", got)
	}
	get := &cloudfront.GetInvalidationInput{DistributionId: aws.String("EDFDVBD6EXAMPLE"), Id: inv.Id}
	g, err := cf.GetInvalidation(ctx, get)
	if err != nil || aws.ToString(g.Invalidation.Status) != "InProgress" {
		t.Fatalf("get at once: %v %v", g, err)
	}
	w := cloudfront.NewInvalidationCompletedWaiter(cf, func(o *cloudfront.InvalidationCompletedWaiterOptions) {
		o.MinDelay, o.MaxDelay = 50*time.Millisecond, 50*time.Millisecond
	})
	if err := w.Wait(ctx, get, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	// The same caller reference and paths: the same invalidation.
	again, err := cf.CreateInvalidation(ctx, &cloudfront.CreateInvalidationInput{DistributionId: aws.String("EDFDVBD6EXAMPLE"), InvalidationBatch: batch("r1", "/a.js", "/css/b.css")})
	if err != nil || aws.ToString(again.Invalidation.Id) != aws.ToString(inv.Id) {
		t.Fatalf("repeat: %v %v", again, err)
	}
	_, err = cf.CreateInvalidation(ctx, &cloudfront.CreateInvalidationInput{DistributionId: aws.String("EDFDVBD6EXAMPLE"), InvalidationBatch: batch("r1", "/other")})
	var api smithy.APIError
	if !errors.As(err, &api) || api.ErrorCode() != "InvalidationBatchAlreadyExists" {
		t.Errorf("reused reference: %v", err)
	}
	if n := len(srv.Invalidations("EDFDVBD6EXAMPLE")); n != 1 {
		t.Errorf("%d invalidations, want 1", n)
	}
}

func TestErrors(t *testing.T) {
	srv := New(0)
	srv.AddDistribution("E1")
	cf := client(t, srv)
	ctx := context.Background()
	_, err := cf.CreateInvalidation(ctx, &cloudfront.CreateInvalidationInput{DistributionId: aws.String("ENOPE"), InvalidationBatch: batch("r", "/x")})
	var nd *types.NoSuchDistribution
	if !errors.As(err, &nd) {
		t.Errorf("unknown distribution: %v", err)
	}
	_, err = cf.GetInvalidation(ctx, &cloudfront.GetInvalidationInput{DistributionId: aws.String("E1"), Id: aws.String("INOPE")})
	var ni *types.NoSuchInvalidation
	if !errors.As(err, &ni) {
		t.Errorf("unknown invalidation: %v", err)
	}
	_, err = cf.CreateInvalidation(ctx, &cloudfront.CreateInvalidationInput{DistributionId: aws.String("E1"), InvalidationBatch: batch("r", "no-slash")})
	var api smithy.APIError
	if !errors.As(err, &api) || api.ErrorCode() != "InvalidArgument" {
		t.Errorf("relative path: %v", err)
	}
	b := batch("r2", "/a")
	b.Paths.Quantity = aws.Int32(2)
	if _, err = cf.CreateInvalidation(ctx, &cloudfront.CreateInvalidationInput{DistributionId: aws.String("E1"), InvalidationBatch: b}); !errors.As(err, &api) || api.ErrorCode() != "InvalidArgument" {
		t.Errorf("quantity mismatch: %v", err)
	}
	// Unsigned: refused.
	hs := httptest.NewServer(srv)
	defer hs.Close()
	resp, err := http.Post(hs.URL+"/2020-05-31/distribution/E1/invalidation", "text/xml", strings.NewReader("<InvalidationBatch/>"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("unsigned request: %s", resp.Status)
	}
	// Wildcards in progress are bounded.
	slow := New(time.Hour)
	slow.AddDistribution("E2")
	cf2 := client(t, slow)
	for i := range 16 {
		_, err = cf2.CreateInvalidation(ctx, &cloudfront.CreateInvalidationInput{DistributionId: aws.String("E2"), InvalidationBatch: batch("w"+string(rune('a'+i)), "/*")})
	}
	var tm *types.TooManyInvalidationsInProgress
	if !errors.As(err, &tm) {
		t.Errorf("16th wildcard in progress: %v", err)
	}
}
