package awstest

import (
	"path/filepath"
	"testing"
)

// IsolateSDK points the SDK's standard chain, for the rest of the test, at
// endpoint (AWS_ENDPOINT_URL; "" leaves it unset) in region with static
// test credentials, and at no shared file, profile, session or instance
// role of this machine, so no test can pick up a developer's real account.
func IsolateSDK(t testing.TB, region, endpoint string) {
	t.Helper()
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID":           "AKIDTEST",
		"AWS_SECRET_ACCESS_KEY":       "test-secret",
		"AWS_SESSION_TOKEN":           "",
		"AWS_REGION":                  region,
		"AWS_DEFAULT_REGION":          "",
		"AWS_PROFILE":                 "",
		"AWS_ENDPOINT_URL":            endpoint,
		"AWS_CONFIG_FILE":             filepath.Join(dir, "config"),
		"AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED":   "true",
	} {
		t.Setenv(k, v)
	}
}
