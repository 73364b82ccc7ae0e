// Command train-digits trains the MNIST digit classifier of package
// digits and writes eval/digits/weights.safetensors, which the package
// embeds. Run it from the repository root:
//
//	go run ./eval/digits/cmd/train-digits
//
// It reads examples/data/mnist, trains with digits.DefaultTrainConfig
// (flags override it), prints the test accuracy, measures the reference
// Fréchet distances documented in package digits, and records all of
// them in the file's metadata. With -references-only it skips training
// and only refreshes the reference distances of an existing file.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"

	"github.com/genpipe/genpipe/eval/digits"
)

func main() {
	cfg := digits.DefaultTrainConfig()
	data := flag.String("data", "examples/data/mnist", "directory of the MNIST idx files")
	out := flag.String("out", "eval/digits/weights.safetensors", "weights file to write")
	flag.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "random seed")
	flag.IntVar(&cfg.Epochs, "epochs", cfg.Epochs, "epochs")
	flag.IntVar(&cfg.Batch, "batch", cfg.Batch, "batch size")
	flag.Float64Var(&cfg.LR, "lr", cfg.LR, "Adam learning rate of the first epoch")
	flag.Float64Var(&cfg.LRDecay, "lr-decay", cfg.LRDecay, "learning-rate factor per epoch")
	flag.IntVar(&cfg.MaxShift, "max-shift", cfg.MaxShift, "largest random shift of a training digit, in pixels")
	refOnly := flag.Bool("references-only", false, "do not train: recompute the reference distances of the weights in -out and rewrite its metadata")
	flag.Parse()
	if err := run(cfg, *data, *out, *refOnly); err != nil {
		log.Fatal(err)
	}
}

func run(cfg digits.TrainConfig, data, out string, refOnly bool) error {
	trainX, trainY, err := digits.ReadMNIST(data, "train")
	if err != nil {
		return err
	}
	testX, testY, err := digits.ReadMNIST(data, "t10k")
	if err != nil {
		return err
	}
	var c *digits.Classifier
	if refOnly {
		b, err := os.ReadFile(out)
		if err != nil {
			return err
		}
		if c, err = digits.Decode(b); err != nil {
			return fmt.Errorf("%s: %w", out, err)
		}
	} else if c, err = digits.Train(cfg, trainX, trainY, testX, testY, log.Printf); err != nil {
		return err
	}
	ref, err := digits.ReferenceDistances(c, trainX, testX)
	if err != nil {
		return err
	}
	for _, r := range ref {
		log.Printf("reference FD %-40s %10.3f", r.Name, r.FD)
	}
	rj, err := json.Marshal(ref)
	if err != nil {
		return err
	}
	b, err := c.Encode(map[string]string{"reference_fd": string(rj)})
	if err != nil {
		return err
	}
	if err := os.WriteFile(out, b, 0o644); err != nil {
		return err
	}
	fmt.Printf("wrote %s (%d bytes), test accuracy %s\n", out, len(b), c.Metadata()["test_accuracy"])
	return nil
}
