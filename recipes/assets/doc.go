// Package assets is the static-assets recipe, use("assets"): the task
// assets:sync sends a local directory (a build's public/) to an S3 bucket,
// the origin of a CDN, from the control machine, once per run (never per
// host). It sends only what changed: one paged listing of the bucket under
// the prefix tells it each object's size and ETag, which for an object
// uploaded in one part is the MD5 of its content, so an unchanged tree
// costs the listing and nothing else (no HEAD per file).
//
// Variables (read when the task runs, so command-line overrides count):
//
//	assets_dir            "public"       the local directory; relative to the
//	                                     Deployfile's directory
//	assets_bucket         (required)     the bucket's name
//	assets_prefix         ""             the key prefix ("static" puts
//	                                     public/app.js at static/app.js)
//	assets_acl            "public-read"  a canned ACL; "" sends none (for
//	                                     buckets that enforce object ownership)
//	assets_cache_control  ""             a Cache-Control value for every file,
//	                                     or a dict of rules: {"default": "...",
//	                                     "*.js": "...", "assets/*": "..."}. A
//	                                     rule's glob is matched as assets_exclude
//	                                     patterns are; the longest matching glob
//	                                     wins, then "default", then none
//	assets_exclude        []             paths to leave out: the copy strategy's
//	                                     matcher (copy_exclude)
//	assets_delete         False          remove objects under the prefix that no
//	                                     longer exist locally, after every upload
//	                                     succeeded
//	assets_delete_force   False          allow deleting more than half of the
//	                                     objects under the prefix
//	assets_parallel       16             concurrent reads and uploads
//
// The S3 client is configured as the AWS CLI's is: AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY, AWS_PROFILE, AWS_REGION (us-east-1 when none is
// configured), AWS_ENDPOINT_URL for an S3-compatible store.
//
// Each upload carries Content-Type by extension, Cache-Control by rule,
// the ACL, Content-MD5 (so a body corrupted on the way is refused by S3)
// and an "md5" metadata value, which identifies the content of an object
// whose ETag is not an MD5 (one uploaded in parts by another tool).
package assets
