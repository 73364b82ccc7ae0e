package suggest

import "testing"

func TestDidYouMean(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"cyclegn", `did you mean "cyclegan"?`},
		{"VAE", `did you mean "vae"?`},
		{"zzzzzz", ""},
	} {
		if got := DidYouMean(tt.in, []string{"cyclegan", "vae", "gan"}); got != tt.want {
			t.Errorf("DidYouMean(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
