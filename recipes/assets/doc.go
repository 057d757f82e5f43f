// Package assets is the static-assets recipe, use("assets"): the task
// assets:sync sends a local directory (a build's public/) to an S3 bucket,
// the origin of a CDN, from the control machine, once per run (never per
// host), and invalidates what changed on the CloudFront distribution in
// front of it. It sends only what changed: one listing of the bucket under
// the prefix (the top level, then its "directories" in parallel) tells it
// each object's size and ETag, so an unchanged tree costs the listing and
// nothing else (no HEAD per file).
//
// The ETag of an object uploaded in one part is the MD5 of its content.
// That of an object uploaded in parts is the MD5 of the parts' MD5s, "-",
// and the count of parts ("9b2cf535f27731c974343645a3985328-3"). davit
// uploads a file of assets_multipart_threshold bytes or more in parts of
// that size, and while it hashes the file it computes the ETag those parts
// will have; a listed ETag equal to it is an unchanged file, decided from
// the listing like the others. Only an object of the right size whose ETag
// is neither (uploaded in parts of another size, or by another tool) costs
// a HEAD, for the "md5" metadata davit stores with every upload; an object
// without it is sent again. Storing the whole-file MD5 as metadata and
// reading it back by HEAD for every multipart object would make each sync
// pay a round trip per large file; predicting the ETag pays it only when
// the part size changed.
//
// The local MD5s are kept between runs in the user's cache directory
// (davit/assets under os.UserCacheDir), keyed by each file's size,
// modification and change times, device and inode, so an unchanged tree
// is walked but not read; a rewrite moves the change time, and the file
// is read again.
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
//	assets_multipart_threshold 8388608   bytes from which a file goes in
//	                                     parts, and the part size (at least
//	                                     5 MiB, S3's smallest part)
//	assets_distribution   ""             a CloudFront distribution id: its
//	                                     changed and deleted paths ("/" and
//	                                     the key) are invalidated in one batch
//	assets_invalidate_max_paths 100      above this many paths, "/*" instead
//	assets_invalidation_wait    0        seconds (or "5m") to wait for the
//	                                     invalidation to complete; 0 does not
//	                                     wait
//
// Every variable is checked before the run's first command (CheckVars),
// every problem reported at once.
//
// The S3 client is configured as the AWS CLI's is: AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY, AWS_PROFILE, AWS_REGION (us-east-1 when none is
// configured), AWS_ENDPOINT_URL for an S3-compatible store.
//
// Each upload carries Content-Type by extension, Cache-Control by rule,
// the ACL, Content-MD5 (of the file, or of each part: a body corrupted on
// the way is refused by S3, and the sync fails naming the file) and the
// "md5" metadata value. Large files go through the SDK's transfer manager
// (feature/s3/transfermanager).
//
// On a terminal (the pretty format, live) a progress bar shows the files
// and bytes uploaded; plain and json output get the summary alone:
// uploaded, unchanged, deleted, bytes sent, the invalidation, the time.
package assets
