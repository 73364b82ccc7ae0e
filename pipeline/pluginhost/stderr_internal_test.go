package pluginhost

import (
	"fmt"
	"strings"
	"testing"
)

func TestStderrTail(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		want   []string
	}{
		{"hclog json", []string{`{"@level":"error","@message":"injected crash","@module":"x","@timestamp":"t","preset":"p","stack":"a\nb"}` + "\n"},
			[]string{"[ERROR] injected crash preset=p stack=a ..."}},
		{"line split across writes", []string{"hel", "lo", "\n", "world"}, []string{"hello", "world"}},
		{"keeps the last lines", func() []string {
			var w []string
			for i := range 30 {
				w = append(w, fmt.Sprintf("line %d\n", i))
			}
			return w
		}(), func() []string {
			var w []string
			for i := 25; i < 30; i++ {
				w = append(w, fmt.Sprintf("line %d", i))
			}
			return w
		}()},
		{"keeps the start of a panic", func() []string {
			w := []string{"before\n", "panic: boom\n", "\n", "goroutine 1 [running]:\n"}
			for i := range 20 {
				w = append(w, fmt.Sprintf("frame %d\n", i))
			}
			return w
		}(), []string{"panic: boom", "goroutine 1 [running]:", "frame 0", "frame 1", "frame 2", "frame 3", "frame 4", "frame 5", "...",
			"frame 15", "frame 16", "frame 17", "frame 18", "frame 19"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newStderrTail(5)
			for _, w := range tt.writes {
				_, _ = r.Write([]byte(w))
			}
			if got := r.Lines(); strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestParseSHA256(t *testing.T) {
	ok := strings.Repeat("ab", 32)
	for _, s := range []string{ok, "sha256:" + ok, "SHA256:" + strings.ToUpper(ok), " " + ok + " "} {
		if _, err := parseSHA256(s); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
	for _, s := range []string{"", "sha256:", ok[:62], ok + "ab", "md5:" + ok, strings.Repeat("zz", 32)} {
		if _, err := parseSHA256(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}
