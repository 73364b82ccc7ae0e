package digits

import (
	"fmt"

	"github.com/genpipe/genpipe/nn"
)

// Reference is one reference Fréchet distance: the features of a set of
// digits (Name says which) against the features of the 10,000 MNIST test
// digits, unless Name says otherwise.
type Reference struct {
	// Name describes the compared sets, e.g. "1,000 training digits".
	Name string `json:"name"`
	// FD is the Fréchet distance of the classifier's features.
	FD float64 `json:"fd"`
}

// ReferenceDistances measures the reference Fréchet distances documented
// in the package comment with classifier c, given the 60,000 training and
// 10,000 test digits (n x 784 values in [0,1]). The 1,000-digit sets use
// the GAN evaluation protocol (1,000 samples against the whole test set),
// so a generator's number can be read against them directly.
func ReferenceDistances(c *Classifier, trainX, testX []float32) ([]Reference, error) {
	if len(trainX) != 60000*Pixels || len(testX) != 10000*Pixels {
		return nil, fmt.Errorf("digits: reference distances need the 60,000 training and 10,000 test digits, got %d and %d", len(trainX)/Pixels, len(testX)/Pixels)
	}
	_, test, err := c.Classify(testX, 10000)
	if err != nil {
		return nil, err
	}
	trainP, train, err := c.Classify(trainX, 60000)
	if err != nil {
		return nil, err
	}
	return references(c, test, trainX, trainP, train)
}

// references computes the reference distances from the test features
// and the leading training digits with their classifier outputs; the
// "60,000 training digits" line is left out unless all of them are given,
// which lets the tests check the other lines quickly.
func references(c *Classifier, test [][]float64, trainX []float32, trainP [][Classes]float64, train [][]float64) ([]Reference, error) {
	const k = 1000
	if len(train) < k || len(trainP) != len(train) || len(trainX) != len(train)*Pixels {
		return nil, fmt.Errorf("digits: references: %d training values, %d outputs and %d feature vectors; want at least %d digits", len(trainX)/Pixels, len(trainP), len(train), k)
	}
	feats := func(x []float32) ([][]float64, error) {
		_, f, err := c.Classify(x, len(x)/Pixels)
		return f, err
	}
	noise := make([]float32, k*Pixels)
	nn.NewRNG(7).Uniform(noise, 0, 1)
	sets := []struct {
		name string
		x    []float32
	}{
		{"1,000 blurred training digits", blur(trainX[:k*Pixels])},
		{"1,000 training digits shifted by 2 px", shift(trainX[:k*Pixels], 2, 2)},
		{"1,000 uniform-noise images", noise},
	}
	var out []Reference
	add := func(name string, a, b [][]float64) error {
		fd, err := FrechetDistance(a, b)
		if err != nil {
			return fmt.Errorf("digits: reference %q: %w", name, err)
		}
		out = append(out, Reference{name, fd})
		return nil
	}
	var even, odd [][]float64
	for i, f := range test {
		if i%2 == 0 {
			even = append(even, f)
		} else {
			odd = append(odd, f)
		}
	}
	if err := add("test digits, even vs odd positions", even, odd); err != nil {
		return nil, err
	}
	// Not a sampling baseline: MNIST's test file holds two writer
	// populations in order (see the package comment).
	if err := add("test digits 0-4,999 vs 5,000-9,999", test[:5000], test[5000:]); err != nil {
		return nil, err
	}
	if len(train) == 60000 {
		if err := add("60,000 training digits", train, test); err != nil {
			return nil, err
		}
	}
	if err := add("1,000 training digits", train[:k], test); err != nil {
		return nil, err
	}
	var low [][]float64
	for i := 0; len(low) < k; i++ {
		if i == len(train) {
			return nil, fmt.Errorf("digits: references: fewer than %d of %d training digits classified 0-4", k, len(train))
		}
		if argmax(trainP[i]) < 5 {
			low = append(low, train[i])
		}
	}
	if err := add("1,000 training digits classified 0-4", low, test); err != nil {
		return nil, err
	}
	for _, s := range sets {
		f, err := feats(s.x)
		if err != nil {
			return nil, err
		}
		if err := add(s.name, f, test); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// blur convolves each 28x28 digit with the 3x3 binomial kernel
// [1 2 1]ᵀ[1 2 1]/16, zero outside the image.
func blur(x []float32) []float32 {
	out := make([]float32, len(x))
	w := [3]float32{0.25, 0.5, 0.25}
	for o := 0; o < len(x); o += Pixels {
		img, dst := x[o:o+Pixels], out[o:o+Pixels]
		for r := 0; r < Size; r++ {
			for c := 0; c < Size; c++ {
				var s float32
				for dr := -1; dr <= 1; dr++ {
					for dc := -1; dc <= 1; dc++ {
						rr, cc := r+dr, c+dc
						if rr >= 0 && rr < Size && cc >= 0 && cc < Size {
							s += w[dr+1] * w[dc+1] * img[rr*Size+cc]
						}
					}
				}
				dst[r*Size+c] = s
			}
		}
	}
	return out
}

// shift moves each 28x28 digit down by dr and right by dc pixels,
// filling with background.
func shift(x []float32, dr, dc int) []float32 {
	out := make([]float32, len(x))
	for o := 0; o < len(x); o += Pixels {
		shiftInto(out[o:o+Pixels], x[o:o+Pixels], dr, dc)
	}
	return out
}

// shiftInto writes one digit src moved down by dr and right by dc pixels
// into dst.
func shiftInto(dst, src []float32, dr, dc int) {
	for r := 0; r < Size; r++ {
		for c := 0; c < Size; c++ {
			sr, sc := r-dr, c-dc
			v := float32(0)
			if sr >= 0 && sr < Size && sc >= 0 && sc < Size {
				v = src[sr*Size+sc]
			}
			dst[r*Size+c] = v
		}
	}
}
