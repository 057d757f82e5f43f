package assets

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"os"
	"path"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	tmtypes "github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/middleware"
)

// uploader sends one file: in one PutObject below the multipart
// threshold, through the SDK's transfer manager in parts of the
// threshold's size from it.
type uploader struct {
	client *s3.Client
	parts  *transfermanager.Client
	s      settings
}

func newUploader(client *s3.Client, s settings) *uploader {
	return &uploader{
		client: client,
		s:      s,
		parts: transfermanager.New(client, func(o *transfermanager.Options) {
			o.PartSizeBytes = s.multipart
			o.MultipartUploadThreshold = s.multipart
			// The parts carry Content-MD5 (addPartMD5), as single
			// uploads do; no CRC that S3-compatible stores may not check.
			o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
			// Files already upload in parallel; a few parts at a time
			// per large file keep the memory bounded.
			o.Concurrency = 4
		}),
	}
}

// contentType is the file's type by extension, as a browser needs it.
func contentType(rel string) string {
	if t := mime.TypeByExtension(path.Ext(rel)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// upload puts one file with its Content-Type, Cache-Control, ACL and md5
// metadata. Content-MD5 (of the file, or of each part) is the MD5 read
// while hashing or while sending: if the body is corrupted on the way,
// S3 refuses it, and the error names the file.
func (u *uploader) upload(ctx context.Context, f localFile) error {
	key := u.s.prefix + f.rel
	body, err := os.Open(f.abs)
	if err != nil {
		return fmt.Errorf("assets_dir: cannot read %s: %w", f.abs, err)
	}
	defer body.Close()
	var cacheControl *string
	if cc := u.s.cache.forPath(f.rel); cc != "" {
		cacheControl = aws.String(cc)
	}
	meta := map[string]string{"md5": f.md5}
	if f.size >= u.s.multipart {
		_, err = u.parts.UploadObject(ctx, &transfermanager.UploadObjectInput{
			Bucket:        aws.String(u.s.bucket),
			Key:           aws.String(key),
			Body:          body,
			ContentLength: aws.Int64(f.size),
			ContentType:   aws.String(contentType(f.rel)),
			CacheControl:  cacheControl,
			ACL:           tmtypes.ObjectCannedACL(u.s.acl),
			Metadata:      meta,
		})
	} else {
		raw, derr := hex.DecodeString(f.md5)
		if derr != nil {
			return fmt.Errorf("upload %s: %w", f.rel, derr)
		}
		_, err = u.client.PutObject(ctx, &s3.PutObjectInput{
			Bucket:        aws.String(u.s.bucket),
			Key:           aws.String(key),
			Body:          body,
			ContentLength: aws.Int64(f.size),
			ContentType:   aws.String(contentType(f.rel)),
			ContentMD5:    aws.String(base64.StdEncoding.EncodeToString(raw)),
			CacheControl:  cacheControl,
			ACL:           u.s.acl,
			Metadata:      meta,
		})
	}
	if err != nil {
		return describe(err, "upload "+f.abs+" to s3://"+u.s.bucket+"/"+key, u.s.bucket)
	}
	return nil
}

// addPartMD5 gives every UploadPart request a Content-MD5 of its part,
// which the transfer manager does not set: S3 then refuses a part whose
// body was corrupted on the way, as it refuses such a PutObject.
func addPartMD5(stack *middleware.Stack) error {
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("davitPartContentMD5",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			if p, ok := in.Parameters.(*s3.UploadPartInput); ok && p.ContentMD5 == nil {
				if body, ok := p.Body.(io.ReadSeeker); ok {
					sum, err := seekableMD5(body)
					if err != nil {
						return middleware.InitializeOutput{}, middleware.Metadata{}, fmt.Errorf("part %d: %w", aws.ToInt32(p.PartNumber), err)
					}
					p.ContentMD5 = aws.String(sum)
				}
			}
			return next.HandleInitialize(ctx, in)
		}), middleware.After)
}

// seekableMD5 is the base64 MD5 of what r holds from where it is, and
// puts r back there.
func seekableMD5(r io.ReadSeeker) (string, error) {
	at, err := r.Seek(0, io.SeekCurrent)
	if err != nil {
		return "", err
	}
	h := md5.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	if _, err := r.Seek(at, io.SeekStart); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(h.Sum(nil)), nil
}
