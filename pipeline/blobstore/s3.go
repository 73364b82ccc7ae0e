package blobstore

import (
	"context"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	gcaws "gocloud.dev/aws"
	"gocloud.dev/blob"
	"gocloud.dev/blob/s3blob"
)

// openS3 opens an s3:// bucket as s3blob's URL opener does (the same
// query parameters), but for one setting the URL cannot carry: the SDK
// must not log a line on stderr for every object read from a server that
// sends no checksum (most S3-compatible servers), which would bury the
// run's own output.
func openS3(ctx context.Context, loc *Location) (*blob.Bucket, error) {
	q := make(map[string][]string, len(loc.Query))
	for k, v := range loc.Query {
		q[k] = v
	}
	take := func(keys ...string) (string, bool) {
		for _, k := range keys {
			if v, ok := q[k]; ok {
				delete(q, k)
				return v[0], true
			}
		}
		return "", false
	}
	var s3opts []func(*s3.Options)
	var opts s3blob.Options
	if v, ok := take("use_path_style", "s3ForcePathStyle"); ok {
		b, _ := strconv.ParseBool(v) // Parse checked it
		s3opts = append(s3opts, func(o *s3.Options) { o.UsePathStyle = b })
	}
	if v, ok := take("disable_https"); ok {
		b, _ := strconv.ParseBool(v)
		s3opts = append(s3opts, func(o *s3.Options) { o.EndpointOptions.DisableHTTPS = b })
	}
	if v, ok := take("accelerate"); ok {
		b, _ := strconv.ParseBool(v)
		s3opts = append(s3opts, func(o *s3.Options) { o.UseAccelerate = b })
	}
	if v, ok := take("ssetype"); ok {
		opts.EncryptionType = types.ServerSideEncryption(v)
	}
	if v, ok := take("kmskeyid"); ok {
		opts.KMSEncryptionID = v
	}
	cfg, err := gcaws.V2ConfigFromURLParams(ctx, q)
	if err != nil {
		return nil, err
	}
	s3opts = append(s3opts, func(o *s3.Options) { o.DisableLogOutputChecksumValidationSkipped = true })
	opts.RequestChecksumCalculation = cfg.RequestChecksumCalculation
	return s3blob.OpenBucket(ctx, s3.NewFromConfig(cfg, s3opts...), loc.Bucket, &opts)
}
