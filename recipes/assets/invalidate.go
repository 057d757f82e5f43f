package assets

import (
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront"
	cftypes "github.com/aws/aws-sdk-go-v2/service/cloudfront/types"
	"github.com/aws/smithy-go"
	"github.com/davit-deploy/davit/tasks"
)

// reasonNew is why a file not yet in the bucket is uploaded: CloudFront
// has nothing of it to invalidate.
const reasonNew = "new"

// invalidationPaths are the CloudFront paths a sync makes stale: each
// replaced and each deleted object's ("/" and its key, the origin serving
// the bucket from its root), or "/*" when there are more than
// assets_invalidate_max_paths. None without assets_distribution.
func invalidationPaths(s settings, p plan) []string {
	if s.distribution == "" {
		return nil
	}
	var paths []string
	for _, f := range p.upload {
		if p.reasons[f.rel] != reasonNew {
			paths = append(paths, cloudFrontPath(s.prefix+f.rel))
		}
	}
	for _, k := range p.delete {
		paths = append(paths, cloudFrontPath(k))
	}
	if len(paths) > s.maxPaths {
		return []string{"/*"}
	}
	sort.Strings(paths)
	return paths
}

// cloudFrontPath is the URL path of a key, escaped as CloudFront wants
// it; a "*" in a name is escaped too, so it is not taken for a wildcard.
func cloudFrontPath(key string) string {
	p := (&url.URL{Path: "/" + key}).EscapedPath()
	return strings.ReplaceAll(p, "*", "%2A")
}

// describePaths names a few paths for a message.
func describePaths(paths []string) string {
	const shown = 5
	if len(paths) <= shown {
		return strings.Join(paths, " ")
	}
	return fmt.Sprintf("%d paths (%s ...)", len(paths), strings.Join(paths[:shown], " "))
}

// invalidate sends one invalidation of paths to assets_distribution and,
// with assets_invalidation_wait, waits up to that long for CloudFront to
// complete it. It returns the invalidation's id.
func (r *Recipe) invalidate(c *tasks.Context, cfg aws.Config, s settings, paths []string) (string, error) {
	cf := cloudfront.NewFromConfig(cfg, r.cfOptions...)
	// A caller reference makes a retried request idempotent; a new one
	// per sync, since the same paths may well change again.
	ref := fmt.Sprintf("davit-%s-%d", SyncTask, time.Now().UnixNano())
	out, err := cf.CreateInvalidation(c.Ctx(), &cloudfront.CreateInvalidationInput{
		DistributionId: aws.String(s.distribution),
		InvalidationBatch: &cftypes.InvalidationBatch{
			CallerReference: aws.String(ref),
			Paths:           &cftypes.Paths{Quantity: aws.Int32(int32(len(paths))), Items: paths},
		},
	})
	if err != nil {
		return "", describeCloudFront(err, s.distribution)
	}
	id := aws.ToString(out.Invalidation.Id)
	if s.wait <= 0 {
		return id, nil
	}
	c.Info(fmt.Sprintf("%s: waiting up to %s for invalidation %s on %s to complete", SyncTask, s.wait, id, s.distribution))
	poll := r.poll
	if poll <= 0 {
		poll = defaultPoll
	}
	w := cloudfront.NewInvalidationCompletedWaiter(cf, func(o *cloudfront.InvalidationCompletedWaiterOptions) {
		o.MinDelay, o.MaxDelay = poll, poll
	})
	err = w.Wait(c.Ctx(), &cloudfront.GetInvalidationInput{DistributionId: aws.String(s.distribution), Id: aws.String(id)}, s.wait)
	if err != nil {
		if c.Ctx().Err() == nil && strings.Contains(err.Error(), "exceeded max wait time") {
			return id, fmt.Errorf("invalidation %s on %s did not complete within assets_invalidation_wait (%s); CloudFront carries on with it", id, s.distribution, s.wait)
		}
		return id, fmt.Errorf("waiting for invalidation %s: %w", id, describeCloudFront(err, s.distribution))
	}
	return id, nil
}

// describeCloudFront names a CloudFront error in the user's words.
func describeCloudFront(err error, distribution string) error {
	var nd *cftypes.NoSuchDistribution
	var api smithy.APIError
	switch {
	case errors.As(err, &nd):
		return fmt.Errorf("invalidate on CloudFront: distribution %q does not exist (assets_distribution): %w", distribution, err)
	case errors.As(err, &api) && api.ErrorCode() == "AccessDenied":
		return fmt.Errorf("invalidate on CloudFront distribution %s: the credentials are refused: %w", distribution, err)
	}
	return fmt.Errorf("invalidate on CloudFront distribution %s: %w", distribution, err)
}
