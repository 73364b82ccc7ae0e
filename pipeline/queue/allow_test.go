package queue

import "testing"

// TestUnder: a worker's --allow entries are folders or blob URL prefixes;
// a URL is allowed only under a URL of the same bucket and settings.
func TestUnder(t *testing.T) {
	roots := []string{"/data", "s3://jobs/in?endpoint=http://minio:9000&use_path_style=true", "mem://scratch"}
	for path, want := range map[string]bool{
		"/data/x":    true,
		"/data":      true,
		"/datax":     false,
		"/elsewhere": false,
		"s3://jobs/in/a?endpoint=http://minio:9000&use_path_style=true": true,
		"s3://jobs/in?use_path_style=true&endpoint=http://minio:9000":   true,
		"s3://jobs/inx?endpoint=http://minio:9000&use_path_style=true":  false,
		"s3://jobs/in/a?endpoint=http://evil:9000&use_path_style=true":  false,
		"s3://jobs/in/a": false,
		"s3://other/in?endpoint=http://minio:9000&use_path_style=true": false,
		"mem://scratch/any/thing":                                      true,
		"mem://other/x":                                                false,
		"s4://jobs/in":                                                 false,
	} {
		if got := under(path, roots); got != want {
			t.Errorf("under(%s) = %v, want %v", path, got, want)
		}
	}
	if under("s3://jobs/in/a", []string{"/"}) {
		t.Error("a URL is under the folder /")
	}
}
