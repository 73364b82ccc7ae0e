// Package blobstore reads and writes the objects of blob storage that the
// load and save stages name by URL instead of a folder: s3:// (AWS S3 and
// S3-compatible servers), gs:// (Google Cloud Storage), azblob:// (Azure
// Blob Storage) and mem:// (a process-wide in-memory store, for tests).
// file:// URLs name local folders; the stages read and write those with
// their own disk code (see [LocalPath]), not through this package.
//
// A URL is SCHEME://BUCKET/PREFIX?QUERY: the objects under PREFIX play the
// part of a folder's files, a key's part after PREFIX being the file's
// path relative to the folder. The query holds the driver's settings
// (endpoint, region, ...), never credentials: those come from the
// environment as each cloud's SDK finds them (for S3 AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY, AWS_PROFILE and the shared config files).
package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/url"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"gocloud.dev/blob"
	"gocloud.dev/blob/memblob"
	"gocloud.dev/gcerrors"

	"github.com/genpipe/genpipe/internal/suggest"
)

// drivers are the schemes this build can open beside s3 and mem: the gs
// and azblob drivers (registered with blob.DefaultMux by gcs.go and
// azure.go) add 31 and 12 MB to the binary, so a build that needs
// neither can leave them out with -tags nogcs,noazure.
var drivers = map[string]bool{"s3": true, "mem": true, "file": true}

// params are the query parameters each scheme accepts; a value "bool" must
// parse as a boolean. Parameters that carry secrets or read key files
// (gs's access_id and private_key_path) are left out: credentials come
// from the environment, never from a pipeline file.
var params = map[string]map[string]string{
	"s3": {
		"endpoint": "", "region": "", "profile": "", "use_path_style": "bool",
		"s3ForcePathStyle": "bool", "disable_https": "bool", "anonymous": "bool",
		"hostname_immutable": "bool", "dualstack": "bool", "fips": "bool",
		"accelerate": "bool", "ssetype": "", "kmskeyid": "",
		"request_checksum_calculation": "", "response_checksum_validation": "",
		"rate_limiter_capacity": "int",
	},
	"gs":     {"anonymous": "bool", "grpc": "bool"},
	"azblob": {"domain": "", "protocol": "", "cdn": "bool", "localemu": "bool", "storage_account": ""},
	"mem":    {},
	"file":   {},
}

// Schemes lists the URL schemes the stages accept, for messages.
const Schemes = "s3://, gs://, azblob://, file:// or mem://"

// IsURL reports whether s has the form of a URL (SCHEME://...) rather than
// a path. Whether the scheme is a known one is [Parse]'s to say, so that a
// mistyped scheme is an error and not a folder named "s4:".
func IsURL(s string) bool {
	i := strings.Index(s, "://")
	if i <= 0 {
		return false
	}
	for j, c := range s[:i] {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case j > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return true
}

// IsBlob reports whether s is a URL that this package opens (any URL but
// file://, which names a local folder).
func IsBlob(s string) bool {
	return IsURL(s) && !strings.HasPrefix(strings.ToLower(s), "file://")
}

// LocalPath returns the folder a file:// URL names (file:///data/in is
// /data/in), and s unchanged for anything else. A malformed file URL is
// returned unchanged too; [Parse] reports it.
func LocalPath(s string) string {
	if !IsURL(s) || !strings.HasPrefix(strings.ToLower(s), "file://") {
		return s
	}
	loc, err := Parse(s)
	if err != nil {
		return s
	}
	return loc.Bucket
}

// Location is a parsed blob URL.
type Location struct {
	// Scheme is s3, gs, azblob, mem or file.
	Scheme string
	// Bucket is the bucket (container) name; for file:// the folder.
	Bucket string
	// Prefix is the key prefix the URL's path names: "" for the whole
	// bucket, else ending in "/".
	Prefix string
	// Query is the driver's settings.
	Query url.Values
}

// Parse checks a blob URL: a known scheme, a bucket, a path without "."
// or ".." segments and query parameters the scheme's driver knows, with
// valid values. It opens nothing (a missing bucket is [Open]'s to find).
func Parse(s string) (*Location, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("malformed URL %q: %v", s, unwrapURL(err))
	}
	scheme := strings.ToLower(u.Scheme)
	known, ok := params[scheme]
	if !ok {
		return nil, fmt.Errorf("unknown URL scheme %q in %q; expected a path or a URL %s", u.Scheme, s, Schemes)
	}
	if u.User != nil {
		return nil, fmt.Errorf("URL %q carries user information; credentials come from the environment, never from the pipeline file", redact(u))
	}
	if u.Fragment != "" {
		return nil, fmt.Errorf("URL %q has a fragment (#%s); a key with \"#\" must be escaped as %%23", s, u.Fragment)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("URL %q: malformed query: %v", s, err)
	}
	names := make([]string, 0, len(q))
	for k := range q {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		kind, ok := known[k]
		if !ok {
			if dym := suggest.DidYouMean(k, slices.Sorted(maps.Keys(known))); dym != "" {
				return nil, fmt.Errorf("URL %q: unknown query parameter %q for %s:// (%s)", s, k, scheme, dym)
			}
			return nil, fmt.Errorf("URL %q: unknown query parameter %q for %s://%s", s, k, scheme, knownList(known))
		}
		if len(q[k]) > 1 {
			return nil, fmt.Errorf("URL %q: query parameter %q is given %d times", s, k, len(q[k]))
		}
		v := q.Get(k)
		switch kind {
		case "bool":
			if _, err := strconv.ParseBool(v); err != nil {
				return nil, fmt.Errorf("URL %q: query parameter %s=%q is not true or false", s, k, v)
			}
		case "int":
			if _, err := strconv.Atoi(v); err != nil {
				return nil, fmt.Errorf("URL %q: query parameter %s=%q is not a whole number", s, k, v)
			}
		}
	}
	if !drivers[scheme] {
		return nil, fmt.Errorf("URL %q: this build of the program has no %s:// driver (it was built with -tags no%s)", s, scheme, map[string]string{"gs": "gcs", "azblob": "azure"}[scheme])
	}
	loc := &Location{Scheme: scheme, Query: q}
	if scheme == "file" {
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("URL %q: a file URL names an absolute folder, file:///path (the host %q is not allowed)", s, u.Host)
		}
		if u.Path == "" || !strings.HasPrefix(u.Path, "/") {
			return nil, fmt.Errorf("URL %q: a file URL names an absolute folder, file:///path", s)
		}
		loc.Bucket = path.Clean(u.Path)
		return loc, nil
	}
	if u.Host == "" {
		return nil, fmt.Errorf("URL %q names no bucket; expected %s://BUCKET/PREFIX", s, scheme)
	}
	loc.Bucket = u.Host
	p := strings.TrimPrefix(u.Path, "/")
	if p != "" {
		for _, seg := range strings.Split(strings.TrimSuffix(p, "/"), "/") {
			if seg == "" || seg == "." || seg == ".." {
				return nil, fmt.Errorf("URL %q: the prefix %q has an empty, \".\" or \"..\" part", s, p)
			}
		}
		loc.Prefix = strings.TrimSuffix(p, "/") + "/"
	}
	return loc, nil
}

func knownList(m map[string]string) string {
	if len(m) == 0 {
		return " (it takes none)"
	}
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return " (known: " + strings.Join(ks, ", ") + ")"
}

func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func redact(u *url.URL) string {
	c := *u
	c.User = nil
	return c.String()
}

// String is the location as a URL without its query: how messages,
// provenance records and manifests name it.
func (l *Location) String() string {
	if l.Scheme == "file" {
		return "file://" + l.Bucket
	}
	return l.Scheme + "://" + l.Bucket + "/" + l.Prefix
}

// Under reports whether l lies inside root: the same scheme, bucket and
// settings (the query: another endpoint is another server), and a prefix
// that is root's or below it, segment by segment.
func (l *Location) Under(root *Location) bool {
	if l.Scheme != root.Scheme || l.Bucket != root.Bucket || !sameQuery(l.Query, root.Query) {
		return false
	}
	return strings.HasPrefix(l.Prefix, root.Prefix)
}

func sameQuery(a, b url.Values) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || len(v) != len(w) {
			return false
		}
		for i := range v {
			if v[i] != w[i] {
				return false
			}
		}
	}
	return true
}

// bucketURL is the URL gocloud opens: the bucket and the settings, the
// prefix being this package's to apply.
func (l *Location) bucketURL() string {
	u := url.URL{Scheme: l.Scheme, Host: l.Bucket, RawQuery: l.Query.Encode()}
	return u.String()
}

// Store is the objects under one location's prefix. Its methods take
// paths relative to the prefix, slash-separated, and are safe for
// concurrent use.
type Store struct {
	loc *Location
	b   *blob.Bucket
}

var (
	bucketsMu sync.Mutex
	// buckets are the buckets opened so far, by bucket URL: a load and a
	// save on one bucket share the client, and a mem:// bucket is one
	// store for the whole process (memblob would make a new, empty one
	// per open).
	buckets = map[string]*blob.Bucket{}
)

// Open opens the location's bucket and checks that it is there and that
// the credentials are accepted, so that a wrong bucket or key is one
// clear error before anything is read or written. The error names the URL
// and the bucket.
func Open(ctx context.Context, loc *Location) (*Store, error) {
	if loc.Scheme == "file" {
		return nil, fmt.Errorf("blob %s: a file URL names a local folder, read it as one", loc)
	}
	key := loc.bucketURL()
	bucketsMu.Lock()
	b, ok := buckets[key]
	if !ok {
		var err error
		switch loc.Scheme {
		case "mem":
			b = memblob.OpenBucket(nil)
		case "s3":
			b, err = openS3(ctx, loc)
		default:
			b, err = blob.OpenBucket(ctx, key)
		}
		if err != nil {
			bucketsMu.Unlock()
			return nil, fmt.Errorf("blob %s: open bucket %q: %w", loc, loc.Bucket, err)
		}
		buckets[key] = b
	}
	bucketsMu.Unlock()
	s := &Store{loc: loc, b: b}
	if loc.Scheme == "mem" {
		return s, nil
	}
	ok, err := b.IsAccessible(ctx)
	switch {
	case err != nil:
		return nil, fmt.Errorf("blob %s: bucket %q: %s", loc, loc.Bucket, describe(err))
	case !ok:
		return nil, fmt.Errorf("blob %s: bucket %q does not exist (or these credentials may not see it)", loc, loc.Bucket)
	}
	return s, nil
}

// describe says what went wrong in a driver error, in words a user can
// act on, keeping the driver's own message.
func describe(err error) string {
	code := gcerrors.Code(err)
	// s3blob leaves some refusals Unknown (a 403 to a listing); the HTTP
	// status tells them.
	var status interface{ HTTPStatusCode() int }
	if errors.As(err, &status) && (status.HTTPStatusCode() == 401 || status.HTTPStatusCode() == 403) {
		code = gcerrors.PermissionDenied
	}
	switch code {
	case gcerrors.PermissionDenied:
		return fmt.Sprintf("access refused: the credentials from the environment (AWS_ACCESS_KEY_ID, AWS_PROFILE, ... for s3) were not accepted: %v", err)
	case gcerrors.NotFound:
		return fmt.Sprintf("not found: %v", err)
	case gcerrors.Canceled, gcerrors.DeadlineExceeded:
		return fmt.Sprintf("interrupted: %v", err)
	}
	return err.Error()
}

// Sub is the store of the objects under rel, a folder's path relative to
// the prefix ending in "/".
func (s *Store) Sub(rel string) *Store {
	loc := *s.loc
	loc.Prefix += rel
	return &Store{loc: &loc, b: s.b}
}

// Location is the store's location.
func (s *Store) Location() *Location { return s.loc }

// URL is the object rel's URL without the query, as messages and records
// name it.
func (s *Store) URL(rel string) string { return s.loc.String() + rel }

func (s *Store) key(rel string) string { return s.loc.Prefix + rel }

// List calls fn for each object under the prefix in key order (byte order
// of the keys), with its path relative to the prefix and its size. With
// recursive false only the objects directly under the prefix are listed
// (those under a deeper "/" are not even fetched). It holds one page of
// the listing (1,000 keys for S3) at a time, whatever the prefix holds.
// Keys ending in "/" (folder markers some tools make) are skipped.
func (s *Store) List(ctx context.Context, recursive bool, fn func(rel string, size int64) error) error {
	opts := &blob.ListOptions{Prefix: s.loc.Prefix}
	if !recursive {
		opts.Delimiter = "/"
	}
	it := s.b.List(opts)
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("blob %s: list: %s", s.loc, describe(err))
		}
		if obj.IsDir || strings.HasSuffix(obj.Key, "/") {
			continue
		}
		if err := fn(strings.TrimPrefix(obj.Key, s.loc.Prefix), obj.Size); err != nil {
			return err
		}
	}
}

// Dirs returns the names of the "folders" directly under the prefix (the
// next key segments that have objects below them), sorted.
func (s *Store) Dirs(ctx context.Context) ([]string, error) {
	it := s.b.List(&blob.ListOptions{Prefix: s.loc.Prefix, Delimiter: "/"})
	var out []string
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("blob %s: list: %s", s.loc, describe(err))
		}
		if obj.IsDir {
			out = append(out, strings.TrimSuffix(strings.TrimPrefix(obj.Key, s.loc.Prefix), "/"))
		}
	}
}

// ReadAll returns the object's bytes. A missing object is an error that
// matches fs.ErrNotExist.
func (s *Store) ReadAll(ctx context.Context, rel string) ([]byte, error) {
	data, err := s.b.ReadAll(ctx, s.key(rel))
	if err != nil {
		if gcerrors.Code(err) == gcerrors.NotFound {
			return nil, fmt.Errorf("%s: %w", s.URL(rel), fs.ErrNotExist)
		}
		return nil, fmt.Errorf("%s: read: %s", s.URL(rel), describe(err))
	}
	return data, nil
}

// Stat returns an object's metadata and whether it exists.
func (s *Store) Stat(ctx context.Context, rel string) (meta map[string]string, exists bool, err error) {
	a, err := s.b.Attributes(ctx, s.key(rel))
	if err != nil {
		if gcerrors.Code(err) == gcerrors.NotFound {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("%s: %s", s.URL(rel), describe(err))
	}
	return a.Metadata, true, nil
}

// Write stores data as the object rel with the given metadata (keys in
// lower case: some stores fold them).
func (s *Store) Write(ctx context.Context, rel string, data []byte, meta map[string]string) error {
	return s.WriteFrom(ctx, rel, &byteReader{data: data}, meta)
}

type byteReader struct {
	data []byte
	off  int
}

func (r *byteReader) Read(p []byte) (int, error) {
	if r.off >= len(r.data) {
		return 0, io.EOF
	}
	n := copy(p, r.data[r.off:])
	r.off += n
	return n, nil
}

// WriteFrom stores what r yields as the object rel, atomically: the object
// appears, whole, only when everything was read and the store committed
// it. An error reading r, or ctx ending, cancels the upload and leaves
// the object as it was (absent, or the earlier version).
func (s *Store) WriteFrom(ctx context.Context, rel string, r io.Reader, meta map[string]string) (err error) {
	// gocloud commits a write at Close, unless the writer's context was
	// canceled first: then Close aborts the upload.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := s.b.NewWriter(wctx, s.key(rel), &blob.WriterOptions{Metadata: meta, ContentType: contentType(rel)})
	if err != nil {
		return fmt.Errorf("%s: write: %s", s.URL(rel), describe(err))
	}
	if _, err := io.Copy(w, r); err != nil {
		cancel()
		_ = w.Close()
		return fmt.Errorf("%s: write (nothing stored): %s", s.URL(rel), describe(err))
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("%s: write: %s", s.URL(rel), describe(err))
	}
	return nil
}

func contentType(rel string) string {
	switch strings.ToLower(path.Ext(rel)) {
	case ".png":
		return "image/png"
	case ".jpg", ".jpeg":
		return "image/jpeg"
	case ".gif":
		return "image/gif"
	case ".json":
		return "application/json"
	case ".jsonl":
		return "application/jsonl"
	case ".csv":
		return "text/csv"
	}
	return "application/octet-stream"
}

// Delete removes the object rel; a missing one is no error.
func (s *Store) Delete(ctx context.Context, rel string) error {
	if err := s.b.Delete(ctx, s.key(rel)); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
		return fmt.Errorf("%s: delete: %s", s.URL(rel), describe(err))
	}
	return nil
}
