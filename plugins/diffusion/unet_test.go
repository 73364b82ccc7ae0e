package diffusion

import (
	"testing"

	"github.com/genpipe/genpipe/nn"
)

func TestParameterCount(t *testing.T) {
	m, err := NewModel(findPreset("mnist-ddpm").arch, nn.NewRNG(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("mnist-ddpm: %d parameters", m.Params.Count())
}
